// One worker position (slot 0 … N-1). A replacement keeps the slot of the worker it replaces, and the slot
// keeps the failure history that drives the restart backoff and the crash-loop breaker.
namespace KestrelCluster.Primary.Supervision;

internal sealed class WorkerSlot(int index)
{
    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_maxBackoff = TimeSpan.FromSeconds(15);

    /// <summary>100 ms after the first crash-loop failure in a row, doubling per failure, at most 15 s.</summary>
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

    private static readonly TimeSpan s_maxSpawnRetry = TimeSpan.FromSeconds(5);

    /// <summary>A start refused for want of a resource: 100 ms after the first, doubling, at most 5 s.</summary>
    public static TimeSpan SpawnRetryDelay(int failures) =>
        TimeSpan.FromTicks(Math.Min(s_maxSpawnRetry.Ticks, s_firstBackoff.Ticks << Math.Clamp(failures - 1, 0, 20)));

    private readonly Queue<DateTimeOffset> _recentFailures = new();
    private int _consecutiveFailures;

    public int Index { get; } = index;

    public volatile WorkerProcess? Current;

    /// <summary>Whether the slot's worker is ready and serving (not retiring, not gone).</summary>
    public bool HasServingWorker => Current is { IsReady: true, IsRetiring: false, HasExited: false };

    public volatile bool Removed;

    /// <summary>How the previous worker of this slot ended; null while it has had only one.</summary>
    public volatile WorkerExit? LastExit;

    /// <summary>Why the last start in this slot failed, while the slot waits to try again; null once a worker started.</summary>
    public volatile string? StartError;

    /// <summary>Starts refused in a row for want of a resource (see SlotSupervisor.FillAsync); 0 once a worker started.</summary>
    public int FailedStarts;

    /// <summary>Workers started in this slot so far (the first is 0: it shows as "restarts").</summary>
    public int StartCount;

    /// <summary>
    /// Counts a worker that died before it proved it runs (see WorkerProcess.HasProvenItself): these, and only these,
    /// grow the backoff and trip the crash-loop breaker.
    /// </summary>
    public (int Consecutive, int InWindow) RecordFailure(TimeSpan window)
    {
        lock (_recentFailures)
        {
            _consecutiveFailures++;
            var now = DateTimeOffset.UtcNow;
            _recentFailures.Enqueue(now);
            while (_recentFailures.Peek() < now - window)
            {
                _recentFailures.Dequeue();
            }

            return (_consecutiveFailures, _recentFailures.Count);
        }
    }

    /// <summary>A worker that ran and served died: the next failure starts the backoff from scratch.</summary>
    public void ResetBackoff()
    {
        lock (_recentFailures)
        {
            _consecutiveFailures = 0;
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
