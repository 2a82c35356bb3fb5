// Least connections: the candidate with the fewest open plus in-flight connections; ties in turn, so equal
// workers still share the load.
namespace KestrelCluster.Scheduling;

internal sealed class LeastConnectionsScheduler : IConnectionScheduler
{
    private int _start;

    public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates)
    {
        var count = candidates.Length;
        var start = (int)((uint)_start++ % (uint)count);
        var best = -1;
        var bestLoad = long.MaxValue;
        for (var i = 0; i < count; i++)
        {
            var index = (start + i) % count;
            var load = candidates[index].OpenConnections + candidates[index].HandoffsInFlight;
            if (load < bestLoad)
            {
                best = index;
                bestLoad = load;
            }
        }

        return best;
    }
}
