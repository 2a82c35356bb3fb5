// The old side of a primary upgrade (SIGUSR2, IClusterManager.UpgradePrimaryAsync, `kestrel-cluster upgrade`): start a new
// primary from the deployed command, give it the listening sockets over the upgrade socket (SCM_RIGHTS: the same sockets,
// never closed, so no connection queued in a backlog is lost), wait until every one of its workers is ready and it
// accepts, then stop accepting, pass it what this primary accepted and had not handed to a worker, and drain. The new
// primary accepts beside this one before this one stops, so there is no moment when nobody accepts.
//
// If the new primary exits, misbehaves or is not ready in time, it is stopped and this primary serves on as before.
// Protocol: Protocol/UpgradeProtocol.cs; the new side: PrimaryTakeover.cs.
using System.Diagnostics;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Primary.Operations;
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Upgrade;

internal sealed partial class PrimaryUpgrade : IDisposable
{
    public const string SocketName = "upgrade.sock";
    private static readonly TimeSpan s_frameTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_stopGrace = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(200); // how often a wait looks at the clock and at a stop

    private readonly Lock _lock = new(); // one upgrade at a time; the successor's channel
    private Task<int>? _running;
    private UpgradeChannel? _successor; // after the handover, until this process exits
    private int _successorProcessId;
    private readonly WorkerPool _pool;
    private readonly WorkerLauncher _launcher;
    private readonly PrimaryListenerTable _listeners;
    private readonly HandoffDispatcher _dispatcher;
    private readonly TimeSpan _timeout;
    private readonly ILogger _logger;

    public PrimaryUpgrade(WorkerPool pool, WorkerLauncher launcher, PrimaryListenerTable listeners, HandoffDispatcher dispatcher,
        TimeSpan timeout, ILogger logger)
    {
        _pool = pool;
        _launcher = launcher;
        _listeners = listeners;
        _dispatcher = dispatcher;
        _timeout = timeout;
        _logger = logger;
    }

    /// <summary>The new primary started: its pid (RELOADING for systemd).</summary>
    public event Action<int>? Starting;

    /// <summary>The new primary took over: its pid (MAINPID for systemd, then this primary stops).</summary>
    public event Action<int>? HandedOver;

    /// <summary>The upgrade failed; this primary serves on.</summary>
    public event Action? Failed;

    /// <summary>The pid of the primary starting or started to take over from this one; 0 when none.</summary>
    public int SuccessorProcessId => Volatile.Read(ref _successorProcessId);

    /// <summary>Runs the upgrade; completes with the new primary's pid once it took over, or throws why it did not.</summary>
    public Task<int> UpgradeAsync()
    {
        lock (_lock)
        {
            var refusal = _successor is not null
                ? $"this primary has handed over to the new primary (pid {SuccessorProcessId}) already."
                : _running is { IsCompleted: false }
                    ? $"a primary upgrade is under way already (new primary pid {SuccessorProcessId})."
                    : RefusalReason();
            if (refusal is not null)
            {
                UpgradeLog.NotStarted(_logger, refusal);
                return Task.FromException<int>(new InvalidOperationException("The primary cannot be upgraded: " + refusal));
            }

            return _running = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _successor?.Dispose();
        }
    }

    private int Run()
    {
        var secret = new byte[ControlFrames.SecretLength];
        Libc.FillRandom(secret);
        var path = Path.Combine(_pool.RuntimeDirectory!, SocketName);
        File.Delete(path); // left by an upgrade that failed
        using var listenSocket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        listenSocket.Bind(new UnixDomainSocketEndPoint(path));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        listenSocket.Listen(1);

        Process process;
        try
        {
            process = Process.Start(CreateStartInfo(new UpgradeInvitation(path, secret, Environment.ProcessId, _pool.LastWorkerId)))!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return Fail(null, null, $"the new primary could not be started ({e.Message})");
        }

        Volatile.Write(ref _successorProcessId, process.Id);
        var (fileName, arguments) = _launcher.Command;
        UpgradeLog.Started(_logger, process.Id, $"{fileName} {string.Join(' ', arguments)}", _timeout);
        Starting?.Invoke(process.Id);
        var deadline = Stopwatch.StartNew();
        UpgradeChannel? channel = null;
        try
        {
            channel = AcceptFrom(listenSocket, process, deadline);
            Welcome(channel, secret);
            ServeUntilReady(channel, deadline);
            HandOver(channel, process.Id);
            return process.Id;
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidDataException or SocketException)
        {
            var reason = e is TimeoutException && deadline.Elapsed >= _timeout
                ? $"the new primary (pid {process.Id}) was not ready within {_timeout} (Cluster:PrimaryUpgradeTimeout); it is stopped"
                : $"the new primary (pid {process.Id}) {e.Message}";
            return Fail(process, channel, reason);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private ProcessStartInfo CreateStartInfo(UpgradeInvitation invitation)
    {
        // The command this primary was started with (typed, so a symlink swap is followed), its environment, and its
        // output: the new primary writes where this one does (the journal, the terminal, the container's log).
        var startInfo = _launcher.CreateCommandStartInfo();
        foreach (var (name, value) in invitation.ToEnvironment())
        {
            startInfo.Environment[name] = value;
        }

        if (ServiceManagerNotifier.SocketPath is { } notifySocket)
        {
            startInfo.Environment[ServiceManagerNotifier.NotifySocketVariable] = notifySocket; // it reports to systemd once it is main
        }

        return startInfo;
    }

    /// <summary>The new primary accepts: stop accepting here, pass it what waits, tell it, and let this primary stop.</summary>
    private void HandOver(UpgradeChannel channel, int processId)
    {
        lock (_lock)
        {
            _successor = channel;
        }

        HandedOver?.Invoke(processId); // MAINPID first: from now on systemd follows the new primary
        var listeners = _listeners.Snapshot();
        foreach (var listener in listeners)
        {
            listener.HandOver();
        }

        // Then the dispatcher, which wakes an accept thread waiting for room; what a thread still accepts in its last burst
        // reaches the new primary the same way as what waits.
        var waiting = 0;
        _dispatcher.HandOver(connections =>
        {
            Interlocked.Add(ref waiting, connections.Count);
            PassOn(connections);
        });
        foreach (var listener in listeners)
        {
            listener.WaitForAcceptThreads();
        }

        // Past the point of no return: this primary accepts no more whatever happens now. A new primary that went away in
        // this instant took the sockets with it, as a primary that dies does; this one drains and exits all the same.
        try
        {
            channel.Send(UpgradeProtocol.TakeOver(), s_frameTimeout);
        }
        catch (Exception e) when (e is IOException or TimeoutException)
        {
            UpgradeLog.SuccessorGoneAtHandover(_logger, processId, e.Message);
        }

        UpgradeLog.HandedOver(_logger, processId, Volatile.Read(ref waiting), _pool.Workers.Count);
    }

    /// <summary>Connections this primary accepted and no worker of its own will serve: to the new primary, in Handoff frames.</summary>
    private void PassOn(List<AcceptedConnection> connections)
    {
        var closed = 0;
        string? reason = null;
        lock (_lock)
        {
            foreach (var batch in connections.Chunk(ControlFrames.MaxFdsPerMessage))
            {
                var frame = new byte[ControlFrames.HandoffLength(batch.Length)];
                var fds = new int[batch.Length];
                for (var i = 0; i < batch.Length; i++)
                {
                    var connection = batch[i];
                    ControlFrames.WriteHandoffEntry(frame, i, new HandoffEntry(connection.Listener.Id, 0, connection.AcceptedAt,
                        connection.Peer));
                    fds[i] = connection.Fd;
                }

                try
                {
                    _successor!.Send(frame, fds, s_frameTimeout);
                }
                catch (Exception e) when (e is IOException or TimeoutException or ObjectDisposedException)
                {
                    closed += batch.Length;
                    reason = e.Message;
                }

                foreach (var connection in batch)
                {
                    connection.Close(); // sent: the new primary holds its own copy
                }
            }
        }

        if (closed > 0)
        {
            UpgradeLog.HandOverClosed(_logger, closed, reason!);
        }
    }

    private int Fail(Process? process, UpgradeChannel? channel, string reason)
    {
        channel?.Dispose();
        if (process is not null)
        {
            if (process.WaitForExit(TimeSpan.FromMilliseconds(500))) // a primary that hung up is on its way out
            {
                reason += $" ({WorkerSlot.DescribeExit(process.ExitCode)})";
            }
            else
            {
                // Gracefully (its workers drain whatever it accepted), then for good.
                _ = Libc.SendSignal(process.Id, 15);
                if (!process.WaitForExit(s_stopGrace))
                {
                    process.Kill();
                }
            }

            process.WaitForExit();
            process.Dispose();
        }

        Volatile.Write(ref _successorProcessId, 0);
        UpgradeLog.Failed(_logger, reason);
        Failed?.Invoke();
        throw new InvalidOperationException($"Primary upgrade failed: {reason}. This primary keeps serving.");
    }
}
