// Round-robin (Node's SCHED_RR): every candidate in turn.
namespace KestrelCluster.Scheduling;

internal sealed class RoundRobinScheduler : IConnectionScheduler
{
    private int _next;

    public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates)
    {
        // Follow slots, not list positions: the candidate list changes as workers fill up and free up.
        var count = candidates.Length;
        for (var i = 0; i < count; i++)
        {
            if (candidates[i].SlotIndex >= _next)
            {
                _next = candidates[i].SlotIndex + 1;
                return i;
            }
        }

        _next = candidates[0].SlotIndex + 1;
        return 0;
    }
}
