// systemd socket activation with clustering on. The primary was started with the activated listening sockets
// (LISTEN_FDS, LISTEN_PID = its pid); Kestrel's UseSystemd() turns them into ListenHandle endpoints, and the primary
// accepts on them (PrimaryConnectionListener marks them close-on-exec, so no worker inherits them). A worker runs the
// same Kestrel configuration: for its UseSystemd() to name the same endpoints (fd 3, …) — which it only registers
// with the primary and never opens — LISTEN_PID must be the worker's own pid. So must it be a new primary's that takes
// over from an upgraded one: it asks the old primary for those sockets by the same names.
using System.Globalization;

namespace KestrelCluster.Hosting;

internal static class SocketActivation
{
    private const string ListenPidVariable = "LISTEN_PID";
    private const string ListenFdsVariable = "LISTEN_FDS";

    /// <summary>
    /// In a worker, or a new primary taking over: the activation of <paramref name="processId"/> (its primary, or the primary
    /// it takes over from) becomes this process's, by name only (no fd is inherited).
    /// </summary>
    public static void AdoptFrom(int processId)
    {
        if (Environment.GetEnvironmentVariable(ListenFdsVariable) is { Length: > 0 }
            && Environment.GetEnvironmentVariable(ListenPidVariable) == processId.ToString(CultureInfo.InvariantCulture))
        {
            Environment.SetEnvironmentVariable(ListenPidVariable, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        }
    }
}
