// The primary's metrics, on the "KestrelCluster" meter (created through IMeterFactory, as ASP.NET Core's own meters
// are), in OpenTelemetry's naming: workers by state, worker restarts by reason, connections accepted, waiting for a
// worker and routed again. Everything but the restarts is observed when a collector asks, from counters the
// primary keeps anyway: nothing is added to the accept path.
using System.Diagnostics.Metrics;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Supervision;

namespace KestrelCluster.Primary.Operations;

internal sealed class PrimaryMetrics
{
    public const string WorkersName = "kestrelcluster.workers";
    public const string RestartsName = "kestrelcluster.worker.restarts";
    public const string AcceptedName = "kestrelcluster.connections.accepted";
    public const string PendingName = "kestrelcluster.connections.pending";
    public const string RedispatchedName = "kestrelcluster.connections.redispatched";

    private readonly Counter<long> _restarts;

    public PrimaryMetrics(IMeterFactory meterFactory, WorkerPool pool, HandoffDispatcher dispatcher)
    {
        var meter = meterFactory.Create(ClusterMeter.Name);
        meter.CreateObservableUpDownCounter(WorkersName, () => CountByState(pool.Workers), unit: "{worker}",
            description: "Worker processes alive, by state (starting, ready, draining).");
        _restarts = meter.CreateCounter<long>(RestartsName, unit: "{restart}",
            description: "Workers that ended and were due for a replacement, by reason (crash, hung, start-timeout, memory, requests, " +
                "rolling).");
        meter.CreateObservableCounter(AcceptedName, () => dispatcher.Accepted, unit: "{connection}",
            description: "Connections the primary accepted.");
        meter.CreateObservableUpDownCounter(PendingName, () => (long)dispatcher.WaitingCount, unit: "{connection}",
            description: "Accepted connections waiting for a worker that can take them.");
        meter.CreateObservableCounter(RedispatchedName, () => dispatcher.Redispatched, unit: "{connection}",
            description: "Connections a worker handed back (refused, or never acknowledged before it went away) and routed again.");
    }

    /// <summary>Counts a worker's exit, unless nothing replaces it (the cluster stopping, a slot removed).</summary>
    public void OnExit(WorkerExit exit)
    {
        if (exit.Reason is not (WorkerExitReason.Shutdown or WorkerExitReason.Scale))
        {
            _restarts.Add(1, new KeyValuePair<string, object?>("reason", WorkerExit.Describe(exit.Reason)));
        }
    }

    private static IEnumerable<Measurement<int>> CountByState(IReadOnlyList<WorkerProcess> workers)
    {
        int starting = 0, ready = 0, draining = 0;
        foreach (var worker in workers)
        {
            switch (worker.State)
            {
                case WorkerState.Ready:
                    ready++;
                    break;
                case WorkerState.Draining:
                    draining++;
                    break;
                default:
                    starting++;
                    break;
            }
        }

        return
        [
            new(starting, new KeyValuePair<string, object?>("state", "starting")),
            new(ready, new KeyValuePair<string, object?>("state", "ready")),
            new(draining, new KeyValuePair<string, object?>("state", "draining")),
        ];
    }
}
