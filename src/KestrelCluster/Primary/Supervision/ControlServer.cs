// The control socket workers connect to: an AF_UNIX SOCK_SEQPACKET socket in a private directory (mode 0700).
// Every connection must prove it is a worker this primary spawned: same user and a child of this process
// (SO_PEERCRED, checked at once), then a Hello frame with that worker's one-time secret from the pid spawned as
// that worker. Anything else is dropped and logged; only the primary's own children cost a hello thread.
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal sealed class ControlServer : IDisposable
{
    private static readonly TimeSpan s_helloTimeout = TimeSpan.FromSeconds(10);

    private readonly ILogger _logger;
    private readonly Func<int, WorkerProcess?> _findWorker;
    private readonly Action<WorkerProcess, Socket> _onAuthenticated;
    private readonly string _directory;
    private readonly Socket _listenSocket;

    public ControlServer(Func<int, WorkerProcess?> findWorker, Action<WorkerProcess, Socket> onAuthenticated, ILogger logger)
    {
        _findWorker = findWorker;
        _onAuthenticated = onAuthenticated;
        _logger = logger;

        // Only this user may even reach the socket; peer credentials and the secret check who connects anyway.
        // Named by pid, as the runtime's diagnostic sockets are: `kestrel-cluster` finds a primary's admin socket here.
        // What killed primaries left there is removed beside the start, not in its way, so the temp directory does not fill
        // with them (this directory is too young to be taken for one).
        _ = Task.Run(() =>
        {
            if (RuntimeDirectories.RemoveStale(Path.GetTempPath()) is > 0 and var removed)
            {
                SupervisionLog.StaleRuntimeDirectoriesRemoved(logger, removed, Path.GetTempPath());
            }
        });

        _directory = Directory.CreateTempSubdirectory(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{RuntimeDirectories.Prefix}{Environment.ProcessId}-")).FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        SocketPath = Path.Combine(_directory, RuntimeDirectories.ControlSocketName);

        _listenSocket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            _listenSocket.Bind(new UnixDomainSocketEndPoint(SocketPath));
            _listenSocket.Listen(512);
        }
        catch
        {
            Dispose();
            throw;
        }

        _ = AcceptLoopAsync();
    }

    public string SocketPath { get; }

    /// <summary>The primary's private runtime directory (mode 0700): the control socket, the admin socket.</summary>
    public string RuntimeDirectory => _directory;

    public void Dispose()
    {
        _listenSocket.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listenSocket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.OperationAborted)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            var credentials = default(PeerCredentials);
            try
            {
                credentials = Libc.GetPeerCredentials(socket);
                if (credentials.UserId != Libc.EffectiveUserId)
                {
                    Reject(socket, credentials, "it runs as another user");
                    continue;
                }

                if (ParentOf(credentials.ProcessId) != Environment.ProcessId)
                {
                    Reject(socket, credentials, "it is not a process this primary started");
                    continue;
                }
            }
            catch (Exception e) when (e is SocketException or InvalidOperationException)
            {
                Reject(socket, credentials, e.Message);
                continue;
            }

            // The hello is awaited on a thread of its own, with poll(): an async receive would register the socket
            // with the runtime's epoll thread for good, and every ack the worker sends later would wake it.
            _ = ControlChannelThread.Start("KC hello", () => Authenticate(socket, credentials));
        }
    }

    /// <summary>
    /// Compares in time that does not depend on where the secrets differ, as CryptographicOperations.FixedTimeEquals
    /// does (the same loop): that call alone mapped System.Security.Cryptography's pages into every primary, 0.4 MB
    /// of idle RSS, for 32 bytes compared once per worker.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    internal static bool SecretsEqual(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual)
    {
        if (expected.Length != actual.Length)
        {
            return false;
        }

        var difference = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            difference |= expected[i] - actual[i];
        }

        return difference == 0;
    }

    /// <summary>The parent pid of <paramref name="processId"/> (/proc/pid/stat), or -1 if it is gone.</summary>
    private static int ParentOf(int processId)
    {
        try
        {
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
            var stat = File.ReadAllText($"/proc/{processId}/stat");
            var fields = stat.AsSpan(stat.LastIndexOf(')') + 2);
            fields = fields[(fields.IndexOf(' ') + 1)..];
            return int.TryParse(fields[..fields.IndexOf(' ')], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var parent) ? parent : -1;
        }
        catch (IOException)
        {
            return -1;
        }
    }

    private void Authenticate(Socket socket, PeerCredentials credentials)
    {
        try
        {
            var buffer = new byte[ControlFrames.MaxFrameLength + 1];
            if (!socket.Poll(s_helloTimeout, SelectMode.SelectRead))
            {
                Reject(socket, credentials, "it sent no hello in time");
                return;
            }

            var errno = Libc.ReceiveMessage(socket.SafeHandle, buffer, [], out var length, out _, out var truncated);
            if (errno == 0 && !truncated && ControlFrames.TryReadHelloVersion(buffer.AsSpan(0, length), out var version)
                && version != ControlProtocol.Version)
            {
                Reject(socket, credentials, ControlProtocol.WorkerMismatch(version));
                return;
            }

            if (errno != 0 || truncated || !ControlFrames.TryReadHello(buffer.AsSpan(0, length), out var workerId, out var secret))
            {
                Reject(socket, credentials, "its first frame is not a valid hello");
                return;
            }

            var worker = _findWorker(workerId);
            if (worker is null || worker.ProcessId != credentials.ProcessId)
            {
                Reject(socket, credentials, $"it is not the process spawned as worker {workerId}");
                return;
            }

            if (!SecretsEqual(worker.Secret, secret))
            {
                Reject(socket, credentials, "its secret is wrong");
                return;
            }

            if (worker.Channel is not null)
            {
                Reject(socket, credentials, $"worker {workerId} is already connected");
                return;
            }

            _onAuthenticated(worker, socket);
        }
#pragma warning disable CA1031 // on this thread, any failure rejects the peer and must not end the primary
        catch (Exception e)
#pragma warning restore CA1031
        {
            Reject(socket, credentials, e.Message);
        }
    }

    private void Reject(Socket socket, PeerCredentials credentials, string reason)
    {
        SupervisionLog.ControlConnectionRejected(_logger, credentials.ProcessId, reason);
        socket.Dispose();
    }
}
