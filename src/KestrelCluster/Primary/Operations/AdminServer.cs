// The admin socket `kestrel-cluster` talks to: an AF_UNIX stream socket, admin.sock in the primary's private runtime
// directory (the directory is 0700, the socket 0600), open to this user and root only (SO_PEERCRED). One command per
// connection, one line each way: the client sends `status`, `restart`, `scale N`, `upgrade` or `stop`; the primary answers with
// one line of JSON (the status itself, or {"ok":…,"message"|"error":…}) and closes. Scripts may speak it directly.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Operations;

internal sealed class AdminServer : IDisposable
{
    public const string SocketName = RuntimeDirectories.AdminSocketName;
    private const int MaxCommandLength = 256;
    private static readonly TimeSpan s_readTimeout = TimeSpan.FromSeconds(5);

    private readonly Socket _listenSocket;
    private readonly Func<string, CancellationToken, Task<byte[]>> _execute;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;

    private AdminServer(Socket listenSocket, Func<string, CancellationToken, Task<byte[]>> execute, ILogger logger,
        CancellationToken stopping)
    {
        _listenSocket = listenSocket;
        _execute = execute;
        _logger = logger;
        _stopping = stopping;
    }

    /// <summary>Opens admin.sock in <paramref name="directory"/>; null (logged) when it cannot be opened.</summary>
    public static AdminServer? TryOpen(string directory, Func<string, CancellationToken, Task<byte[]>> execute, ILogger logger,
        CancellationToken stopping)
    {
        var path = Path.Combine(directory, SocketName);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            socket.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            socket.Dispose();
            OperationsLog.AdminUnavailable(logger, path, e);
            return null;
        }

        var server = new AdminServer(socket, execute, logger, stopping);
        _ = server.AcceptLoopAsync();
        return server;
    }

    public void Dispose() => _listenSocket.Dispose();

    /// <summary>A reply that reports success or failure: {"ok":true,"message":…} or {"ok":false,"error":…}.</summary>
    public static byte[] Reply(bool ok, string text)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteBoolean("ok", ok);
            json.WriteString(ok ? "message" : "error", text);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listenSocket.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException { SocketErrorCode: SocketError.OperationAborted })
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        {
            try
            {
                var peer = Libc.GetPeerCredentials(client);
                if (peer.UserId != Libc.EffectiveUserId && peer.UserId != 0)
                {
                    OperationsLog.AdminRejected(_logger, peer.ProcessId, peer.UserId, "it runs as another user");
                    return;
                }

                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
                timeout.CancelAfter(s_readTimeout);
                var command = await ReadLineAsync(client, timeout.Token).ConfigureAwait(false);
                if (command is null)
                {
                    await SendAsync(client, Reply(false, $"Send one command of at most {MaxCommandLength} bytes, ended by a newline."))
                        .ConfigureAwait(false);
                    return;
                }

                if (command != "status")
                {
                    OperationsLog.AdminCommand(_logger, command, peer.ProcessId);
                }

                await SendAsync(client, await _execute(command, _stopping).ConfigureAwait(false)).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // one bad admin client must never reach the primary
            catch (Exception e)
#pragma warning restore CA1031
            {
                try
                {
                    await SendAsync(client, Reply(false, e is OperationCanceledException ? "The primary is stopping." : e.Message))
                        .ConfigureAwait(false);
                }
                catch (Exception sendError) when (sendError is SocketException or ObjectDisposedException)
                {
                    // The client is gone.
                }
            }
        }
    }

    private static async Task<string?> ReadLineAsync(Socket client, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxCommandLength + 1];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            var newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline >= 0)
            {
                return Encoding.UTF8.GetString(buffer, 0, newline).Trim();
            }
        }

        return length is > 0 and <= MaxCommandLength ? Encoding.UTF8.GetString(buffer, 0, length).Trim() : null;
    }

    private static async Task SendAsync(Socket client, byte[] reply)
    {
        await client.SendAsync(reply, SocketFlags.None).ConfigureAwait(false);
        await client.SendAsync("\n"u8.ToArray(), SocketFlags.None).ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Parses "scale N": N, or null when the command is not that.</summary>
    public static int? ParseScale(string command) =>
        command.StartsWith("scale ", StringComparison.Ordinal)
            && int.TryParse(command.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out var workers)
            ? workers : null;
}
