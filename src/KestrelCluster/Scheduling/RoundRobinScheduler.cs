// Round-robin (Node's SCHED_RR): every candidate in turn. With several accept threads (ClusterOptions.AcceptThreads)
// calls run concurrently, without a lock: two racing calls can pick the same worker, which costs a little evenness and
// never an invalid choice (the cursor is read once per call).
namespace KestrelCluster.Scheduling;

internal sealed class RoundRobinScheduler : IConnectionScheduler
{
    private int _next;

    public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates)
    {
        // Follow slots, not list positions: the candidate list changes as workers fill up and free up.
        var count = candidates.Length;
        var next = Volatile.Read(ref _next);
        for (var i = 0; i < count; i++)
        {
            if (candidates[i].SlotIndex >= next)
            {
                Volatile.Write(ref _next, candidates[i].SlotIndex + 1);
                return i;
            }
        }

        Volatile.Write(ref _next, candidates[0].SlotIndex + 1);
        return 0;
    }
}
