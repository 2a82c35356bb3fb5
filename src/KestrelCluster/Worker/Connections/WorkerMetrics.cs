// A worker's metrics, on the "KestrelCluster" meter (System.Diagnostics.Metrics, created through IMeterFactory as
// ASP.NET Core's own meters are): watch them with dotnet-counters, or export them with OpenTelemetry's
// AddMeter("KestrelCluster").
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerMetrics
{
    public const string MeterName = ClusterMeter.Name;
    public const string HandoffDurationName = "kestrelcluster.handoff.duration";

    private readonly Histogram<double> _handoffDuration;

    public WorkerMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _handoffDuration = meter.CreateHistogram(
            HandoffDurationName,
            unit: "s",
            description: "Time from the primary accepting a connection to this worker's Kestrel taking it.",
            advice: new InstrumentAdvice<double>
            {
                HistogramBucketBoundaries = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                    0.05, 0.1, 0.25, 1],
            });
    }

    /// <summary>Records one handoff, from the primary's accept timestamp (the same monotonic clock in every process).</summary>
    public void RecordHandoff(long acceptedAt)
    {
        if (_handoffDuration.Enabled)
        {
            _handoffDuration.Record(Stopwatch.GetElapsedTime(acceptedAt).TotalSeconds);
        }
    }
}
