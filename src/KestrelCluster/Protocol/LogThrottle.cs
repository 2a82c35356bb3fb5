// Once per interval: for a condition that can repeat thousands of times a second (out of fds, at a limit), one log line
// that says how often it happened, never one per occurrence. Shared by both ends (the primary's accept threads, a
// worker's control channel).
using System.Diagnostics;

namespace KestrelCluster.Protocol;

internal sealed class LogThrottle(TimeSpan interval)
{
    /// <summary>How often a condition that persists (out of fds, at the budget, a start retried) is logged again.</summary>
    public static readonly TimeSpan RepeatInterval = TimeSpan.FromSeconds(10);

    private readonly Lock _lock = new();
    private long _loggedAt;
    private int _count;

    /// <summary>
    /// Counts one occurrence; true when it is to be logged now (the first one, then at most once per interval), with how
    /// many occurred since the last line (this one included).
    /// </summary>
    public bool Count(out int occurrences)
    {
        lock (_lock)
        {
            _count++;
            if (_loggedAt != 0 && Stopwatch.GetElapsedTime(_loggedAt) < interval)
            {
                occurrences = 0;
                return false;
            }

            _loggedAt = Stopwatch.GetTimestamp();
            occurrences = _count;
            _count = 0;
            return true;
        }
    }
}
