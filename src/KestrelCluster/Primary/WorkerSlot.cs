// One worker position (slot 0 … N-1). A replacement keeps the slot of the worker it replaces, and the slot
// keeps the failure history that drives the restart backoff and the crash-loop breaker.
namespace KestrelCluster.Primary;

internal sealed class WorkerSlot(int index)
{
    /// <summary>A replacement after a worker that ran this long without failing starts with no delay again.</summary>
    public static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_maxBackoff = TimeSpan.FromSeconds(15);

    /// <summary>100 ms after the first failure in a row, doubling per failure, at most 15 s.</summary>
    public static TimeSpan Backoff(int consecutiveFailures) =>
        TimeSpan.FromTicks(Math.Min(s_maxBackoff.Ticks, s_firstBackoff.Ticks << Math.Clamp(consecutiveFailures - 1, 0, 20)));

    /// <summary>"exit code 3", or "killed by SIGKILL" (the runtime reports death by signal N as 128 + N).</summary>
    internal static string DescribeExit(int exitCode) => exitCode switch
    {
        137 => "killed by SIGKILL",
        143 => "killed by SIGTERM",
        134 => "aborted (SIGABRT)",
        139 => "crashed (SIGSEGV)",
        > 128 and < 160 => $"killed by signal {exitCode - 128}",
        _ => $"exit code {exitCode}",
    };

    private readonly Queue<DateTimeOffset> _recentFailures = new();
    private int _consecutiveFailures;

    public int Index { get; } = index;

    public volatile WorkerProcess? Current;

    public volatile bool Removed;

    /// <summary>Workers started in this slot so far (the first is 0: it shows as "restarts").</summary>
    public int StartCount;

    public (int Consecutive, int InWindow) RecordFailure(bool afterStableRun, TimeSpan window)
    {
        lock (_recentFailures)
        {
            _consecutiveFailures = afterStableRun ? 1 : _consecutiveFailures + 1;
            var now = DateTimeOffset.UtcNow;
            _recentFailures.Enqueue(now);
            while (_recentFailures.Peek() < now - window)
            {
                _recentFailures.Dequeue();
            }

            return (_consecutiveFailures, _recentFailures.Count);
        }
    }

    public void ResetFailures()
    {
        lock (_recentFailures)
        {
            _consecutiveFailures = 0;
            _recentFailures.Clear();
        }
    }
}
