// Round-robin over the workers that can take a connection now (Node's SCHED_RR).
using KestrelCluster.Primary;

namespace KestrelCluster.Scheduling;

internal sealed class RoundRobinScheduler
{
    private int _next;

    /// <summary>Picks the next worker, in turn, that is ready, serves the connection's listener and is under its in-flight limit.</summary>
    /// <remarks>Called under the dispatcher's lock.</remarks>
    public WorkerChannel? Pick(IReadOnlyList<WorkerChannel> ready, int listenerId)
    {
        var count = ready.Count;
        for (var i = 0; i < count; i++)
        {
            var index = (_next + i) % count;
            var worker = ready[index];
            if (worker.CanTake(listenerId))
            {
                _next = (index + 1) % count;
                return worker;
            }
        }

        return null;
    }
}
