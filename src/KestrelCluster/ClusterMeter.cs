// The name of the meter every KestrelCluster process publishes on.
namespace KestrelCluster;

internal static class ClusterMeter
{
    /// <summary>
    /// The meter name: <c>dotnet-counters monitor --counters KestrelCluster</c>, OpenTelemetry's <c>AddMeter("KestrelCluster")</c>.
    /// </summary>
    public const string Name = "KestrelCluster";
}
