// Latencies as a histogram with HdrHistogram's layout (2 significant digits: every bucket is at most 1% wide), in
// microseconds up to an hour: percentiles at a fixed cost, whatever the number of requests.
namespace KestrelCluster.Benchmarks.Faults;

internal sealed class LatencyHistogram
{
    private const int SubBuckets = 128; // values below 128 µs exact; above, 64 buckets per power of two (< 1.6%)
    private readonly long[] _counts = new long[SubBuckets + (64 * 26)];

    public long Count { get; private set; }

    public long MaxMicroseconds { get; private set; }

    public void Record(long microseconds)
    {
        microseconds = Math.Max(0, microseconds);
        _counts[Index(microseconds)]++;
        Count++;
        MaxMicroseconds = Math.Max(MaxMicroseconds, microseconds);
    }

    /// <summary>The value at <paramref name="percentile"/> (0–100): the upper edge of its bucket, never above the maximum.</summary>
    public double Percentile(double percentile)
    {
        if (Count == 0)
        {
            return double.NaN;
        }

        var rank = (long)Math.Ceiling(percentile / 100 * Count);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= Math.Max(1, rank))
            {
                return Math.Min(UpperEdge(i), MaxMicroseconds);
            }
        }

        return MaxMicroseconds;
    }

    private static int Index(long value)
    {
        if (value < SubBuckets)
        {
            return (int)value;
        }

        var power = 63 - (int)long.LeadingZeroCount(value); // 7 or more
        var offset = (int)((value >> (power - 6)) & 63);
        return Math.Min(SubBuckets + ((power - 7) * 64) + offset, (SubBuckets + (64 * 26)) - 1);
    }

    private static double UpperEdge(int index)
    {
        if (index < SubBuckets)
        {
            return index;
        }

        var power = ((index - SubBuckets) / 64) + 7;
        var offset = (index - SubBuckets) % 64;
        return ((64L + offset + 1) << (power - 6)) - 1;
    }
}
