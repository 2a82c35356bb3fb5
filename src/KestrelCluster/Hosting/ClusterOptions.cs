// The options of the cluster transport, bound from the "Cluster" configuration section.
namespace KestrelCluster;

/// <summary>
/// Options for the cluster transport. Bound from the <c>Cluster</c> configuration section, then from the
/// delegate given to <c>UseClusterTransport</c>; validated at startup.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>The configuration section the options are bound from.</summary>
    public const string SectionName = "Cluster";

    /// <summary>
    /// The number of worker processes. <c>0</c> turns clustering off: Kestrel serves in this one process with its
    /// usual sockets transport (handy for debugging).
    /// </summary>
    /// <remarks>Defaults to <see cref="Environment.ProcessorCount"/>, which honours a container's CPU quota.</remarks>
    public int Workers { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// How long a worker may take from launch to reporting ready (its host started and every endpoint registered)
    /// before it is killed and counted as a failed start.
    /// </summary>
    /// <remarks>Defaults to 60 seconds.</remarks>
    public TimeSpan WorkerStartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The most accepted connections handed to one worker and not yet acknowledged by it. A worker at the limit
    /// gets no new connections until it catches up, so a stalled worker cannot swallow connections.
    /// </summary>
    /// <remarks>Defaults to 64.</remarks>
    public int MaxHandoffsInFlight { get; set; } = 64;
}
