// The handoff latency metric (kestrelcluster.handoff.duration), end to end: the primary's accept timestamp travels
// with the fd, the worker records the histogram, and the sample app's /handoff endpoint (a MeterListener) reads it.
using System.Globalization;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

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

    [Fact]
    public async Task PrimaryMetrics_WorkersConnectionsAndRestarts_AreMeasuredOnTheKestrelClusterMeter()
    {
        await using var factory = new ClusterAppFactory(ClusterFixture.Environment(certificatePath: null));
        await factory.StartAsync(workers: 2);
        var meterFactory = factory.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var measurements = new System.Collections.Concurrent.ConcurrentQueue<(string Name, long Value, string? Tag)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            // Only this primary's meter: other primaries of the test run publish on meters of the same name.
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "KestrelCluster" && instrument.Meter.Scope == meterFactory)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            measurements.Enqueue((instrument.Name, value, tags.Length > 0 ? tags[0].Value as string : null)));
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
            measurements.Enqueue((instrument.Name, value, tags.Length > 0 ? tags[0].Value as string : null)));
        listener.Start();

        var endpoint = HttpProbe.EndPointOf(factory.Addresses[0]);
        for (var i = 0; i < 5; i++)
        {
            await HttpProbe.NewConnectionRequestAsync(endpoint); // a connection each, whatever the endpoint answers
        }

        measurements.Clear();
        listener.RecordObservableInstruments();
        Assert.Contains(("kestrelcluster.workers", 2L, "ready"), measurements);
        Assert.Contains(("kestrelcluster.workers", 0L, "starting"), measurements);
        Assert.Contains(measurements, m => m is { Name: "kestrelcluster.connections.accepted", Value: >= 5 });
        Assert.Contains(("kestrelcluster.connections.pending", 0L, (string?)null), measurements);
        Assert.Contains(measurements, m => m.Name == "kestrelcluster.connections.redispatched");

        TestProcesses.Signal(factory.WorkerProcessIds()[0], TestProcesses.SIGKILL);
        await Wait.UntilAsync(() => measurements.Contains(("kestrelcluster.worker.restarts", 1L, "crash")), TimeSpan.FromSeconds(10),
            "the restart is counted, with its reason");
    }

    [GeneratedRegex(@"(?<count>\d+) connections handed over; accept → Kestrel p50 (?<p50>[\d.]+) µs, p99 [\d.]+ µs, max (?<max>[\d.]+) µs")]
    private static partial Regex Summary();
}
