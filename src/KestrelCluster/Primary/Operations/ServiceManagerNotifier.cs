// sd_notify for a cluster: with systemd's Type=notify, the primary reports READY=1 once its workers are ready (not
// when its own host has started, which is all Microsoft.Extensions.Hosting.Systemd can see), STATUS=n/m workers
// ready, RELOADING=1 … READY=1 around a rolling restart, and STOPPING=1 at the stop signal. NOTIFY_SOCKET is taken
// out of the environment at UseClusterTransport: the app's UseSystemd() then sends nothing itself (no early
// READY=1), and workers, which would inherit it, cannot notify in the service's name (systemd would log them).
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Primary.Operations;

internal sealed class ServiceManagerNotifier : IDisposable
{
    public const string NotifySocketVariable = "NOTIFY_SOCKET";
    private static string? s_socketPath;

    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint _endpoint;

    private ServiceManagerNotifier(string path)
    {
        // "@name" is an abstract socket: its address starts with a NUL byte.
        _endpoint = new UnixDomainSocketEndPoint(path.StartsWith('@') ? "\0" + path[1..] : path);
    }

    /// <summary>In the primary, before the host is built: keeps NOTIFY_SOCKET for this class and removes it from the environment.</summary>
    public static void TakeSocketFromEnvironment()
    {
        if (Environment.GetEnvironmentVariable(NotifySocketVariable) is { Length: > 0 } path)
        {
            s_socketPath = path;
            Environment.SetEnvironmentVariable(NotifySocketVariable, null);
        }
    }

    /// <summary>The service manager's socket this primary took from its environment, if any (a new primary gets it too).</summary>
    public static string? SocketPath => s_socketPath;

    /// <summary>A notifier when systemd (or anything speaking its protocol) asked for notifications; otherwise null.</summary>
    public static ServiceManagerNotifier? Create() => s_socketPath is { } path ? new ServiceManagerNotifier(path) : null;

    /// <summary>Sends one notification ("READY=1\nSTATUS=…"); a service manager that is gone is not an error.</summary>
    public void Notify(string state)
    {
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), SocketFlags.None, _endpoint);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>RELOADING=1 must carry the CLOCK_MONOTONIC time in µs (systemd 253's Type=notify-reload checks it).</summary>
    public static string Reloading(string status)
    {
        var microseconds = System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1_000_000);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"RELOADING=1\nMONOTONIC_USEC={microseconds}\nSTATUS={status}");
    }

    public void Dispose() => _socket.Dispose();
}
