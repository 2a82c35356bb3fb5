// What app code can ask about the process it runs in: primary, worker or not clustered.
namespace KestrelCluster;

/// <summary>The role of this process in the cluster.</summary>
public enum ClusterRole
{
    /// <summary>Not clustered: <c>Cluster:Workers</c> is 0, or the platform cannot pass sockets between processes.</summary>
    Standalone,

    /// <summary>The primary: binds the endpoints, accepts connections and supervises the workers. It runs no requests.</summary>
    Primary,

    /// <summary>A worker: serves the connections the primary hands to it.</summary>
    Worker,
}

/// <summary>
/// Where this process stands in the cluster. Injectable in every role; in a worker it says which worker this is.
/// </summary>
public interface IClusterContext
{
    /// <summary>The role of this process.</summary>
    ClusterRole Role { get; }

    /// <summary>
    /// The worker id: unique for the life of the primary, starting at 1; a replacement worker gets a new id.
    /// <see langword="null"/> outside a worker.
    /// </summary>
    int? WorkerId { get; }

    /// <summary>
    /// The worker's slot, 0 to <see cref="WorkerCount"/> - 1; a replacement keeps the slot of the worker it replaces.
    /// <see langword="null"/> outside a worker.
    /// </summary>
    int? SlotIndex { get; }

    /// <summary>The number of worker slots the primary runs (0 when standalone).</summary>
    int WorkerCount { get; }
}
