// A worker at its open-files limit refuses what it cannot take and says so: the primary offers it nothing more until it
// has closed some connections, or a second has passed (then one connection at a time, as a probe). The worker's side is
// WorkerControlChannel.FdLimit.
namespace KestrelCluster.Primary.Connections;

internal sealed partial class WorkerChannel
{
    // After the worker said it is at its open-files limit: the open connections below which it is offered connections
    // again, and when it said so (Environment.TickCount64). Past FdLimitProbeAfter it is offered connections regardless:
    // what held its fds may have been something else than connections, and a refusal costs only a re-route.
    private long _fdCeiling = long.MaxValue;
    private long _fdLimitAt;

    /// <summary>How long a worker at its open-files limit is offered nothing, unless it closes connections first.</summary>
    internal static readonly TimeSpan FdLimitProbeAfter = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether the worker is below its open-files limit, as far as the primary can tell: it has closed connections since
    /// it said so, or (a probe, one connection at a time) <see cref="FdLimitProbeAfter"/> has passed.
    /// </summary>
    public bool HasFdRoom => OpenConnections < Volatile.Read(ref _fdCeiling)
        || (_outbox.UnacknowledgedEstimate == 0
            && Environment.TickCount64 - Volatile.Read(ref _fdLimitAt) >= (long)FdLimitProbeAfter.TotalMilliseconds);

    /// <summary>
    /// The worker is at its open-files limit, and refused what it could not take: nothing more for it until it has closed a
    /// sixteenth of its connections (or <see cref="FdLimitProbeAfter"/> has passed).
    /// </summary>
    public void OnFdLimit()
    {
        var open = OpenConnections;
        Volatile.Write(ref _fdLimitAt, Environment.TickCount64);
        Volatile.Write(ref _fdCeiling, Math.Max(0, open - Math.Max(1, open / 16)));
    }

    /// <summary>The worker reported closed connections on their own (no ack carried them).</summary>
    public void OnConnectionsClosed(int count)
    {
        Interlocked.Add(ref _closedConnections, count);
        if (_fdCeiling != long.MaxValue && OpenConnections < Volatile.Read(ref _fdCeiling))
        {
            _dispatcher.Flush(); // room again after its open-files limit: what waits goes to it
        }
    }
}
