// The primary's control surface for app code: what the workers are doing, rolling restart, scaling.
namespace KestrelCluster;

/// <summary>
/// Controls the cluster from the primary: inspect the workers, restart them without downtime, change their
/// number. Registered in the primary (and, with no effect but a clear error, when not clustered); workers
/// have no <see cref="IClusterManager"/>.
/// </summary>
public interface IClusterManager
{
    /// <summary>A snapshot of the workers alive now (starting, ready or draining), by slot.</summary>
    /// <returns>A new list on each call: while a worker replaces another, a slot has two.</returns>
    IReadOnlyList<WorkerInfo> GetWorkers();

    /// <summary>The number of worker slots (the target worker count, <see cref="ClusterOptions.Workers"/> until scaled).</summary>
    int WorkerCount { get; }

    /// <summary>
    /// Rolling restart: slot by slot, starts a replacement, waits until it is ready, stops routing to the old
    /// worker and lets it drain. Connections keep being served throughout. Completes when every slot has been
    /// replaced (or a replacement failed to start: then the old worker keeps serving and this throws).
    /// The same happens on SIGHUP.
    /// </summary>
    /// <param name="cancellationToken">Stops the restart between slots.</param>
    /// <returns>A task that completes when the restart is done.</returns>
    Task RestartWorkersAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Changes the number of workers. New slots start at once; removed slots (the highest) stop routing and
    /// drain. SIGTTIN adds one worker and SIGTTOU removes one, as in Gunicorn.
    /// </summary>
    /// <param name="workers">The new worker count, 1 or more.</param>
    /// <param name="cancellationToken">Stops waiting; the change itself goes on.</param>
    /// <returns>A task that completes when the new workers are ready and the removed ones have exited.</returns>
    Task ScaleAsync(int workers, CancellationToken cancellationToken = default);

    /// <summary>
    /// Upgrades the primary itself without downtime: starts a new primary from the deployed command and hands it the
    /// listening sockets (never closed: nothing queued in a backlog is lost). Once every worker of the new primary is
    /// ready and it accepts, this primary stops accepting, passes on the connections it had not handed to a worker,
    /// drains its workers and exits. If the new primary exits or is not ready within
    /// <see cref="ClusterOptions.PrimaryUpgradeTimeout"/>, it is stopped, this primary serves on, and this throws.
    /// The same happens on SIGUSR2.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting; the upgrade itself goes on.</param>
    /// <returns>A task that completes with the new primary's process id once it has taken over.</returns>
    /// <exception cref="InvalidOperationException">
    /// The upgrade failed, or cannot run here: PID 1 in a container, under <c>dotnet run</c> or <c>dotnet watch</c>, inside
    /// a test host, while stopping, or while another upgrade is under way. The message says which.
    /// </exception>
    Task<int> UpgradePrimaryAsync(CancellationToken cancellationToken = default);
}

/// <summary>The lifecycle state of a worker.</summary>
public enum WorkerState
{
    /// <summary>Launched; its app has not reported started yet. It gets no connections.</summary>
    Starting,

    /// <summary>Serving: the primary routes connections to it.</summary>
    Ready,

    /// <summary>Being retired (restart, recycle, scale down, shutdown): no new connections; it finishes what it has.</summary>
    Draining,
}

/// <summary>A snapshot of one worker, as the primary sees it.</summary>
public sealed record WorkerInfo
{
    /// <summary>The worker id (1, 2, …; never reused).</summary>
    public int Id { get; init; }

    /// <summary>The slot it fills, 0 to <see cref="IClusterManager.WorkerCount"/> - 1.</summary>
    public int SlotIndex { get; init; }

    /// <summary>Its process id.</summary>
    public int ProcessId { get; init; }

    /// <summary>Its lifecycle state.</summary>
    public WorkerState State { get; init; }

    /// <summary>0 for the first workers; each rolling restart starts the next generation.</summary>
    public int Generation { get; init; }

    /// <summary>How many workers this slot had before this one (crashes, recycles, restarts).</summary>
    public int Restarts { get; init; }

    /// <summary>When it was launched.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Connections it has taken from the primary.</summary>
    public long ConnectionsHandedOff { get; init; }

    /// <summary>Requests it has started, as of its last heartbeat.</summary>
    public long Requests { get; init; }

    /// <summary>Its resident memory, as of its last heartbeat.</summary>
    public long MemoryBytes { get; init; }
}
