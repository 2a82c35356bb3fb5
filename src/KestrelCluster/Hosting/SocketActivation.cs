// systemd socket activation with clustering on. The primary was started with the activated listening sockets
// (LISTEN_FDS, LISTEN_PID = its pid); Kestrel's UseSystemd() turns them into ListenHandle endpoints, and the primary
// accepts on them (PrimaryConnectionListener marks them close-on-exec, so no worker inherits them). A worker runs the
// same Kestrel configuration: for its UseSystemd() to name the same endpoints (fd 3, …) — which it only registers
// with the primary and never opens — LISTEN_PID must be the worker's own pid.
using System.Globalization;

namespace KestrelCluster.Hosting;

internal static class SocketActivation
{
    private const string ListenPidVariable = "LISTEN_PID";
    private const string ListenFdsVariable = "LISTEN_FDS";

    /// <summary>In a worker: the primary's activation becomes this process's, by name only (no fd is inherited).</summary>
    public static void AdoptInWorker(int primaryProcessId)
    {
        if (Environment.GetEnvironmentVariable(ListenFdsVariable) is { Length: > 0 }
            && Environment.GetEnvironmentVariable(ListenPidVariable) == primaryProcessId.ToString(CultureInfo.InvariantCulture))
        {
            Environment.SetEnvironmentVariable(ListenPidVariable, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        }
    }
}
