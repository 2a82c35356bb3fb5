// The figures of one fault-lab run, from its per-request record.
using System.Globalization;

namespace KestrelCluster.Benchmarks.Faults;

internal sealed record FaultFigures(long Sent, long Failed, TimeSpan LongestGap, IReadOnlyList<TimeSpan?> Recoveries, double P50Ms, double P99Ms,
    double P999Ms, double MaxMs, double AnsweredPerSecond, int[] OkPerBucket, int[] FailedPerBucket)
{
    public int LimitKills { get; init; }

    public int Restarts { get; init; }

    public double SuccessPercent => Sent == 0 ? 0 : (Sent - Failed) * 100.0 / Sent;

    public static FaultFigures From(LoadRecord record, double rate, TimeSpan duration, IReadOnlyList<TimeSpan> faults, TimeSpan bucket)
    {
        var sent = record.Completed.Length;
        var buckets = (int)Math.Ceiling(duration / bucket);
        var ok = new int[buckets];
        var failed = new int[buckets];
        var successes = new List<TimeSpan>();
        for (var i = 0; i < sent; i++)
        {
            var at = Math.Min(buckets - 1, (int)(record.Completed[i] / bucket));
            if (record.Succeeded[i])
            {
                ok[at]++;
                successes.Add(record.Completed[i]);
            }
            else
            {
                failed[at]++;
            }
        }

        successes.Sort();
        var end = successes.Count > 0 && successes[^1] > duration ? successes[^1] : duration;
        var gap = TimeSpan.Zero;
        var previous = TimeSpan.Zero;
        foreach (var at in successes.Append(end))
        {
            gap = at - previous > gap ? at - previous : gap;
            previous = at;
        }

        // Back to full capacity: from the fault to the first 100 ms from which a whole second (or what is left before the
        // next fault) answers at least 90 % of the rate sent in every 100 ms. Null: not before the next fault (or the end).
        var expected = rate * bucket.TotalSeconds * 0.9;
        var recoveries = new List<TimeSpan?>();
        for (var f = 0; f < faults.Count; f++)
        {
            var from = (int)(faults[f] / bucket);
            var until = f + 1 < faults.Count ? (int)(faults[f + 1] / bucket) : buckets;
            TimeSpan? recovery = null;
            for (var start = from; start < until && recovery is null; start++)
            {
                var window = Math.Min(start + 10, until);
                if (Enumerable.Range(start, window - start).All(b => ok[b] >= expected))
                {
                    recovery = (bucket * start) - faults[f] > TimeSpan.Zero ? (bucket * start) - faults[f] : TimeSpan.Zero;
                }
            }

            recoveries.Add(recovery);
        }

        var latency = record.Latency;
        return new FaultFigures(sent, sent - successes.Count, gap, recoveries, latency.Percentile(50) / 1000, latency.Percentile(99) / 1000,
            latency.Percentile(99.9) / 1000, latency.MaxMicroseconds / 1000.0, successes.Count / duration.TotalSeconds, ok, failed);
    }

    /// <summary>"—" without faults; else the median and the longest, and how many never recovered before the next fault.</summary>
    public string Recovery()
    {
        if (Recoveries.Count == 0)
        {
            return "—";
        }

        var recovered = Recoveries.Where(r => r is not null).Select(r => r!.Value.TotalSeconds).Order().ToList();
        var never = Recoveries.Count - recovered.Count;
        if (recovered.Count == 0)
        {
            return Recoveries.Count == 1 ? "never" : $"never ({never} faults)";
        }

        var median = recovered[recovered.Count / 2];
        return string.Create(CultureInfo.InvariantCulture, $"{median:0.0} s (max {recovered[^1]:0.0} s){(never > 0 ? $", {never} of {Recoveries.Count} never" : "")}");
    }

    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"sent {Sent,6:N0} failed {Failed,6:N0} ({SuccessPercent:0.00} %) gap {LongestGap.TotalSeconds:0.00} s back {Recovery()} " +
        $"p50 {P50Ms:0.0} p99 {P99Ms:0.0} p99.9 {P999Ms:0.0} max {MaxMs:0} ms, {AnsweredPerSecond:N0}/s, limit kills {LimitKills}, restarts {Restarts}");
}
