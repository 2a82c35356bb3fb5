// The fault lab's scenarios and setups: what each does to the app, and what each setup is given to cope with it.
namespace KestrelCluster.Benchmarks.Faults;

internal enum FaultAction
{
    /// <summary>No action: the fault is in the app's own traffic (a leak, a large heap).</summary>
    None,

    /// <summary>At each fault instant a request that ends the process serving it.</summary>
    Poison,

    /// <summary>At each fault instant a deploy.</summary>
    Deploy,

    /// <summary>From the first fault instant on, closed-loop clients of an endpoint that blocks its thread.</summary>
    Blockers,
}

/// <summary>
/// A scenario: its fault, when it strikes (fractions of the measured time), the memory limit of each setup (bytes), what
/// the app and the setups are given, and the setups it is run against.
/// </summary>
internal sealed record FaultScenario(string Name, string Title, string Fault, FaultAction Action, double[] FaultFractions, long? MemoryLimit,
    double DurationFactor, IReadOnlyList<LabSetup> Setups, Func<LabSetup, bool, LabConfiguration> Configure);

internal static class FaultScenarios
{
    private static readonly LabConfiguration s_nothing = new(new Dictionary<string, string>(), [], []);

    public static readonly LabSetup Plain = new("plain", "plain Kestrel, restarted on exit", LabKind.Plain, "#d62728");
    public static readonly LabSetup Cluster = new("cluster-2", "KestrelCluster, 2 workers", LabKind.Cluster, "#1f77b4");
    public static readonly LabSetup ClusterWarm = new("cluster-2-warm", "KestrelCluster, WarmUpPath=/", LabKind.Cluster, "#9467bd")
    {
        Variant = "Cluster__WarmUpPath=/",
    };

    public static readonly LabSetup ClusterUpgrade = new("cluster-2-usr2", "KestrelCluster, SIGUSR2", LabKind.Cluster, "#17becf", DeploySignal: 12);
    public static readonly LabSetup Node = new("node-cluster", "Node.js cluster, 2 workers", LabKind.NodeCluster, "#2ca02c");
    public static readonly LabSetup Pm2 = new("pm2", "PM2 cluster mode, 2 instances", LabKind.Pm2, "#ff7f0e");

    public const long LeakLimit = 600_000_000;
    public const int LeakKb = 32;
    public const long WorkerMemory = 180_000_000;
    public const int Blockers = 48;

    public static IReadOnlyList<FaultScenario> All { get; } =
    [
        new("poison", "A poison request every 2 s",
            "a request that ends the process serving it (`Environment.FailFast`; Node: `process.abort()`) every 2 s",
            FaultAction.Poison, [.. Enumerable.Range(1, 9).Select(i => i / 10.0)], null, 1, [Plain, Cluster, ClusterWarm, Node, Pm2], (_, _) => s_nothing),
        new("leak", "A leak under a 600 MB memory limit",
            $"every request keeps {LeakKb} KiB for good; the setup's processes share a {LeakLimit / 1_000_000} MB memory limit. KestrelCluster gets " +
            $"`Cluster:MaxWorkerMemory={WorkerMemory}`, PM2 `--max-memory-restart {WorkerMemory / 1_000_000}M`; plain Kestrel and Node's cluster have " +
            "nothing but the limit",
            FaultAction.None, [], LeakLimit, 1.5, [Plain, Cluster, ClusterWarm, Node, Pm2],
            (setup, _) => new(new Dictionary<string, string> { ["FaultApp__LeakKb"] = $"{LeakKb}" },
                [$"--Cluster:MaxWorkerMemory={WorkerMemory}"], ["--max-memory-restart", $"{WorkerMemory / 1_000_000}M"])),
        new("deploy", "Two deploys",
            "a deploy at 25 % and 60 % of the run: plain Kestrel stopped and started again (`systemctl restart`); KestrelCluster `SIGHUP` " +
            "(rolling restart) and `SIGUSR2` (a new primary); Node's cluster `SIGHUP` handled by the app (a new worker, then the old " +
            "one disconnects); `pm2 reload`",
            FaultAction.Deploy, [0.25, 0.6], null, 1, [Plain, Cluster, ClusterWarm, ClusterUpgrade, Node, Pm2], (_, _) => s_nothing),
        new("starvation", "Thread-pool starvation",
            $"from 10 % of the run, {Blockers} clients of an endpoint that blocks its thread for 50 ms (sync over async: " +
            "`Task.Delay(50).Wait()`; Node: `Atomics.wait`, its event loop held); the figures are for the other requests",
            FaultAction.Blockers, [0.1], null, 1, [Plain, Cluster, Node, Pm2], (_, _) => s_nothing),
        new("gc", "A large live heap",
            "1 GiB of live 1 KiB objects across the setup (one process 1 GiB, two workers 512 MiB each) and 64 KiB of garbage per " +
            "request, 8 of the live objects replaced per request (so the old generation is collected too)",
            FaultAction.None, [], null, 1, [Plain, Cluster, Node, Pm2],
            (setup, smoke) => new(new Dictionary<string, string>
            {
                ["FaultApp__LiveHeapMb"] = $"{(smoke ? 64 : 1024) / (setup.Kind == LabKind.Plain ? 1 : 2)}",
                ["FaultApp__ChurnKb"] = "64",
            }, [], [])),
    ];

}
