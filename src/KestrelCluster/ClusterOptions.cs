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

    /// <summary>The most worker processes a primary runs: <see cref="Workers"/> above it fails at startup.</summary>
    public const int MaxWorkers = 1024;

    /// <summary>
    /// The number of worker processes. <c>0</c> turns clustering off: Kestrel serves in this one process with its
    /// usual sockets transport (handy for debugging).
    /// </summary>
    /// <remarks>
    /// Defaults to <see cref="Environment.ProcessorCount"/>, which honours a container's CPU quota. At most
    /// <see cref="MaxWorkers"/>; more than 4 per CPU is allowed but logged as a warning (the workers then compete for
    /// the cores, and each one costs a process's memory).
    /// </remarks>
    public int Workers { get; set; } = Environment.ProcessorCount;

    /// <summary>
    /// How the primary spreads connections over the workers. A scheduler registered in DI as
    /// <see cref="IConnectionScheduler"/> replaces the built-in policies (except <see cref="SchedulingPolicy.Shared"/>,
    /// where the primary schedules nothing).
    /// </summary>
    /// <remarks>Defaults to <see cref="SchedulingPolicy.RoundRobin"/>.</remarks>
    public SchedulingPolicy Scheduling { get; set; } = SchedulingPolicy.RoundRobin;

    /// <summary>
    /// How long a worker may take from launch to reporting ready (its host started and every endpoint registered)
    /// before it is killed and counted as a failed start.
    /// </summary>
    /// <remarks>Defaults to 60 seconds.</remarks>
    public TimeSpan WorkerStartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A path each new worker requests of itself, over its own endpoint and the whole pipeline, before it reports
    /// ready: it compiles its request path (the JIT of each process) before it takes connections, so a worker that
    /// starts, restarts or replaces another serves at full speed from its first connection. Requests go on until the
    /// JIT settles (no method compiled for a quarter of a second) or <see cref="MaxWarmUpTime"/> has passed; they carry
    /// the header <c>KestrelCluster-Warm-Up: 1</c> and are not counted for <see cref="MaxRequestsPerWorker"/>.
    /// Use a cheap GET endpoint without side effects that does no I/O. <see langword="null"/> turns it off.
    /// </summary>
    /// <remarks>Defaults to <see langword="null"/> (off).</remarks>
    public string? WarmUpPath { get; set; }

    /// <summary>The longest a worker's warm-up (<see cref="WarmUpPath"/>) may take; it then reports ready regardless.</summary>
    /// <remarks>Defaults to 10 seconds. Must be shorter than <see cref="WorkerStartTimeout"/>.</remarks>
    public TimeSpan MaxWarmUpTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The most accept threads per endpoint: <see cref="AcceptThreads"/> above it fails at startup.</summary>
    public const int MaxAcceptThreads = 64;

    /// <summary>
    /// The threads that accept connections on each endpoint in the primary and hand them to the workers. Each waits on
    /// the same listening socket (a new connection wakes one of them) and routes through its own share of the
    /// dispatcher, so they never wait for one another. Not used with <see cref="SchedulingPolicy.Shared"/>, where the
    /// workers accept.
    /// </summary>
    /// <remarks>
    /// Defaults to one per 4 CPUs (<see cref="Environment.ProcessorCount"/> / 4, at least 1): one accept thread hands
    /// off about as many new connections as four cores of Kestrel can accept and close (measured: see docs/performance.md,
    /// Primary capacity), and an idle one only waits. At most <see cref="MaxAcceptThreads"/>.
    /// </remarks>
    public int AcceptThreads { get; set; } = Math.Max(1, Environment.ProcessorCount / 4);

    /// <summary>
    /// The most accepted connections handed to one worker and not yet acknowledged by it. A worker at the limit
    /// gets no new connections until it catches up, so a stalled worker cannot swallow connections.
    /// </summary>
    /// <remarks>Defaults to 64.</remarks>
    public int MaxHandoffsInFlight { get; set; } = 64;

    /// <summary>
    /// The longest an accepted connection waits in the primary for a worker that can take it (none is ready, or every one
    /// is at its limit). Past it the primary closes the connection, so a client is never left waiting for good: it sees the
    /// connection closed and can retry, as after a proxy's connect timeout. A waiting connection whose client has gone is
    /// closed at once, whatever this says. Checked once a second.
    /// </summary>
    /// <remarks>Defaults to 30 seconds.</remarks>
    public TimeSpan MaxConnectionWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a primary upgrade (SIGUSR2, <see cref="IClusterManager.UpgradePrimaryAsync"/>) waits for the new primary to
    /// start and every one of its workers to be ready. Past it the new primary is stopped and this one serves on.
    /// </summary>
    /// <remarks>Defaults to 2 minutes.</remarks>
    public TimeSpan PrimaryUpgradeTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often a worker reports that it is alive (and its requests, memory and thread-pool lag).</summary>
    /// <remarks>Defaults to 1 second.</remarks>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A ready worker silent for this long (no heartbeat: hung, deadlocked, thread pool starved, stopped) is
    /// killed and replaced.
    /// </summary>
    /// <remarks>Defaults to 30 seconds.</remarks>
    public TimeSpan WorkerTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a worker being retired (rolling restart, recycle, scale down) may drain its connections
    /// before it is killed. At shutdown the host's <c>ShutdownTimeout</c> applies instead.
    /// </summary>
    /// <remarks>Defaults to 30 seconds.</remarks>
    public TimeSpan WorkerStopTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Crash-loop breaker: a slot whose worker fails this many times within <see cref="CrashLoopWindow"/> is not
    /// restarted again (an error with the exit code is logged); a rolling restart or a scale-up tries it again.
    /// Only failures count: a worker that dies before it is ready, or within <see cref="MinWorkerUptime"/> of
    /// becoming ready without having served a connection. A worker that ran and served and is then killed (by an
    /// operator, the OOM killer, a request that crashes it) is replaced at once, and counts for nothing.
    /// </summary>
    /// <remarks>Defaults to 5.</remarks>
    public int CrashLoopRestarts { get; set; } = 5;

    /// <summary>
    /// How long a ready worker must run, when it has served no connection yet, before its death no longer counts as
    /// a crash-loop failure (<see cref="CrashLoopRestarts"/>) nor grows the restart backoff (100 ms, doubling per
    /// failure in a row, at most 15 s).
    /// </summary>
    /// <remarks>Defaults to 1 second (PM2's <c>min_uptime</c>).</remarks>
    public TimeSpan MinWorkerUptime { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The window of <see cref="CrashLoopRestarts"/>.</summary>
    /// <remarks>Defaults to 1 minute.</remarks>
    public TimeSpan CrashLoopWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Recycle a worker after it has served this many requests: a replacement starts, and once it is ready the
    /// old worker drains and exits (never a hard kill). <c>0</c> turns it off.
    /// </summary>
    /// <remarks>Defaults to 0 (off).</remarks>
    public long MaxRequestsPerWorker { get; set; }

    /// <summary>
    /// Up to this many requests are added, at random per worker, to <see cref="MaxRequestsPerWorker"/>, so that
    /// workers started together are not all recycled at once.
    /// </summary>
    /// <remarks>Defaults to 0.</remarks>
    public long MaxRequestsJitter { get; set; }

    /// <summary>
    /// Recycle a worker whose resident memory exceeds this many bytes, checked at every heartbeat, the same
    /// graceful way as <see cref="MaxRequestsPerWorker"/>. <c>0</c> turns it off.
    /// </summary>
    /// <remarks>Defaults to 0 (off).</remarks>
    public long MaxWorkerMemory { get; set; }

    /// <summary>
    /// Run workers even under <c>dotnet watch</c>. Off by default: hot reload applies a change to the process
    /// <c>dotnet watch</c> started (the primary) only, and workers would keep serving the last build, so under
    /// <c>dotnet watch</c> the app runs in one process, as with <see cref="Workers"/> = 0 (logged once). When on,
    /// every hot reload is followed by a warning that the workers did not get it.
    /// </summary>
    /// <remarks>Defaults to <see langword="false"/>.</remarks>
    public bool WorkersUnderDotnetWatch { get; set; }
}
