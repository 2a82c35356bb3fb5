// The handoff latency metric (kestrelcluster.handoff.duration), end to end: the primary's accept timestamp travels
// with the fd, the worker records the histogram, and the sample app's /handoff endpoint (a MeterListener) reads it.
using System.Globalization;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed partial class MetricsTests(ClusterFixture cluster)
{
    [Fact]
    public async Task HandoffDuration_NewConnections_RecordedByTheWorkerThatTookThem()
    {
        using var client = HttpProbe.CreateClient(keepAlive: false);
        for (var i = 0; i < 10; i++)
        {
            await client.GetStringAsync(cluster.HttpAddress);
        }

        var reports = new Dictionary<int, string>();
        for (var i = 0; i < 10; i++)
        {
            var body = await client.GetStringAsync(cluster.HttpAddress + "/handoff");
            reports[HttpProbe.ServedBy(body)] = body;
        }

        Assert.Subset(cluster.Factory.WorkerProcessIds().ToHashSet(), reports.Keys.ToHashSet());
        foreach (var (pid, report) in reports)
        {
            // Every worker's count includes at least the connection this very request came on.
            var match = Summary().Match(report);
            Assert.True(match.Success, $"worker {pid}: {report}");
            Assert.True(long.Parse(match.Groups["count"].Value, CultureInfo.InvariantCulture) >= 1, report);
            var p50 = double.Parse(match.Groups["p50"].Value, CultureInfo.InvariantCulture);
            var max = double.Parse(match.Groups["max"].Value, CultureInfo.InvariantCulture);
            Assert.InRange(p50, 0.01, 1_000_000); // positive, and under a second: a real cross-process duration, not a clock mix-up
            Assert.InRange(max, p50, 10_000_000);
        }
    }

    [GeneratedRegex(@"(?<count>\d+) connections handed over; accept → Kestrel p50 (?<p50>[\d.]+) µs, p99 [\d.]+ µs, max (?<max>[\d.]+) µs")]
    private static partial Regex Summary();
}
