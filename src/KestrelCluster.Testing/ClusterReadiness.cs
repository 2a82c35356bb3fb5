// The factory's server is up when the whole cluster is: every worker slot has a ready worker. Without this, the first
// requests of a test all reach the first worker that got ready, and a test of "spread over the workers" fails by timing.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Testing;

internal static class ClusterReadiness
{
    /// <summary>How often the workers' states are read while waiting.</summary>
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(10);

    /// <summary>What the primary may take beyond a worker's start timeout to replace one that failed to start.</summary>
    private static readonly TimeSpan s_slack = TimeSpan.FromSeconds(10);

    public static void WaitForEveryWorker(IServiceProvider services)
    {
        if (services.GetService<IClusterContext>() is not { Role: ClusterRole.Primary }
            || services.GetService<IClusterManager>() is not { } manager)
        {
            return; // not clustered (Cluster:Workers=0, or not Linux): the test process serves alone
        }

        var timeout = services.GetRequiredService<IOptions<ClusterOptions>>().Value.WorkerStartTimeout + s_slack;
        var deadline = DateTime.UtcNow + timeout;
        while (manager.GetWorkers().Count(w => w.State == WorkerState.Ready) < manager.WorkerCount)
        {
            if (DateTime.UtcNow > deadline)
            {
                var states = string.Join(", ",
                    manager.GetWorkers().Select(w => $"worker {w.Id} (slot {w.SlotIndex}, pid {w.ProcessId}) {w.State}"));
                throw new InvalidOperationException($"{manager.WorkerCount} workers were not ready within {timeout.TotalSeconds:0} s " +
                    $"({(states.Length == 0 ? "none running" : states)}); the primary's log says why.");
            }

            Thread.Sleep(s_poll); // CreateHost is synchronous; this waits on a condition, bounded by the deadline above
        }
    }
}
