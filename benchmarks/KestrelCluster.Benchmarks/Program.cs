// The benchmark harness. Run it with benchmarks/run.sh (which builds Release and installs wrk when missing).
//   --rounds N        interleaved rounds (A B C … A B C …); default 5
//   --duration S      seconds per wrk run; default 10
//   --smoke           1 round of 2 s per case and small micro-benchmarks: proves the harness works, measures nothing
//   --setups a,b      only these setups (plain is always included: it is the reference)
//   --out DIR         where the Markdown table goes; default benchmarks/results
//   --handoff-only    only the accept → ConnectionContext latency micro-benchmark (for iterating on the handoff path)
//   --baseline DLL    adds setup cluster-2-baseline: the BenchApp.dll of another build (say a git worktree of main),
//                     interleaved with this one, for an A/B of a change in one run
//   --throughput-only only the wrk tables: skips the memory, descriptor and handoff figures
//   --variant N=V     adds, for every selected setup, a copy "<setup>+N=V" run with the environment variable N=V (an A/B of
//                     a runtime setting in the same run)
//   --modes a,b       warm (every setup alive and warmed for the whole run), isolated (each setup started fresh and run
//                     alone, with its cold first 5 s), pinned (isolated, server on CPU 1 and wrk on CPU 0); default warm,isolated.
//                     isolated and pinned measure --setups if given, else their own default set (IsolatedMode.cs); h2: h2load,
//                     h2c and HTTP/2 over TLS, warm, plain and cluster-2 (H2Mode.cs); rolling: a SIGHUP under load, cluster-2
//                     and cluster-2-warm unless --setups (RollingMode.cs); primary: the primary's capacity per core, with sink
//                     workers, 1 and 2 accept threads, and plain Kestrel accepting and closing as the reference (PrimaryMode.cs);
//                     faults: the fault lab, what a cluster buys (Faults/FaultsMode.cs), into results/<time>-faults/
//   --scenarios a,b   faults: only these scenarios (poison, leak, deploy, starvation, gc)
//   --rate N          faults: the open-loop rate, requests per second; default 2000
//   --fault-duration S faults: seconds measured per run; default 20 (the leak scenario runs 1.5× as long)
//   --faultapp-baseline DLL  faults: adds, for each cluster setup, "<setup>-before" running another build's FaultApp.dll
//                     (a git worktree of main, say): a product change measured before and after in one run
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using KestrelCluster.Benchmarks;
using KestrelCluster.Benchmarks.Faults;

if (args is ["--connect-load", var loadPort, var loadSeconds, var loadConcurrency])
{
    // The primary mode's load generator, run in a process of its own (pinned by the caller).
    await ConnectLoad.RunAsync(int.Parse(loadPort, CultureInfo.InvariantCulture),
        TimeSpan.FromSeconds(double.Parse(loadSeconds, CultureInfo.InvariantCulture)), int.Parse(loadConcurrency, CultureInfo.InvariantCulture));
    return;
}

var options = HarnessOptions.Parse(args);
if (options.HandoffOnly)
{
    var latency = await HandoffBenchmark.LatencyAsync(5_000);
    Console.WriteLine($"p50 / p99: accept → fd received {Percentiles(latency.FdReceived)}; accept → ConnectionContext {Percentiles(latency.AcceptToContext)}; " +
        $"connect → ConnectionContext: cluster {Percentiles(latency.ClusterConnectToContext)}, plain Kestrel {Percentiles(latency.PlainConnectToContext)}, added {Added(latency)}");
    return;
}

var allSetups = Setups(options).ToList();
var setups = allSetups.Where(s => s.Name is "plain" or "cluster-2-baseline" || (options.Setups is null ? !s.OptIn : options.Setups.Contains(s.Name))).ToList();
if (options.Variant is { } variant)
{
    var (name, value) = (variant.Split('=', 2)[0], variant.Split('=', 2)[1]);
    List<Setup> WithVariants(IEnumerable<Setup> list) => [.. list.SelectMany(s => new[]
    {
        s,
        s with
        {
            Name = $"{s.Name}+{variant}",
            Description = $"{s.Description}, with {variant}",
            Environment = new Dictionary<string, string>(s.Environment) { [name] = value },
        },
    })];
    setups = WithVariants(setups);
    allSetups = WithVariants(allSetups);
}

var results = setups.ToDictionary(s => s.Name, _ => new List<Measured>());

// The isolated and pinned tables: the warm mode's setups keep their servers for the whole run, these start their own.
List<Setup> ModeSetups(string[] defaults) => options.Setups is null || options.Smoke
    ? [.. allSetups.Where(s => defaults.Contains(s.Name) && (!options.Smoke || s.Name is "plain" or "cluster-2"))]
    : setups;
var modeTables = new List<string>();
if (options.Modes.Contains("isolated"))
{
    modeTables.Add(await IsolatedMode.RunAsync(options, ModeSetups(IsolatedMode.DefaultSetups), pinned: false));
}

if (options.Modes.Contains("pinned"))
{
    modeTables.Add(await IsolatedMode.RunAsync(options, ModeSetups(IsolatedMode.PinnedSetups), pinned: true));
}

if (options.Modes.Contains("rolling"))
{
    modeTables.Add(await RollingMode.RunAsync(options, ModeSetups(RollingMode.DefaultSetups)));
}

if (options.Modes.Contains("primary"))
{
    modeTables.Add(await PrimaryMode.RunAsync(options, typeof(HarnessOptions).Assembly.Location));
}

if (options.Modes.Contains("h2"))
{
    modeTables.Add(await H2Mode.RunAsync(options, options.BenchApp));
}

if (options.Modes.Contains("faults"))
{
    var folder = Path.Combine(options.Output, $"{DateTime.UtcNow:yyyyMMdd-HHmm}-faults{(options.Smoke ? "-smoke" : "")}");
    var faults = await FaultsMode.RunAsync(options, new LabPaths(options.FaultApp, options.NodeFaults, options.Pm2, options.FaultAppBaseline), folder);
    await File.WriteAllTextAsync(Path.Combine(folder, "README.md"), Header(options) + faults);
    Console.WriteLine();
    Console.WriteLine(faults);
    Console.WriteLine($"Written to {folder}");
    modeTables.Add($"Mode: **faults**: see [{Path.GetFileName(folder)}]({Path.GetFileName(folder)}/README.md).\n");
    if (options.Modes.SetEquals(["faults"]))
    {
        return;
    }
}

if (!options.Modes.Contains("warm"))
{
    var tables = string.Join('\n', modeTables);
    Console.WriteLine();
    Console.WriteLine(tables);
    if (!options.ThroughputOnly)
    {
        Directory.CreateDirectory(options.Output);
        var modesFile = Path.Combine(options.Output, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{string.Join('-', options.Modes)}{(options.Smoke ? "-smoke" : "")}.md");
        await File.WriteAllTextAsync(modesFile, Header(options) + tables);
        Console.WriteLine($"Written to {modesFile}");
    }

    return;
}

Console.WriteLine($"{setups.Count} setups, {options.Rounds} rounds, wrk -t{options.Threads} -c{options.Connections} -d{options.Duration.TotalSeconds}s");

// Every setup runs for the whole measurement: started once, warmed up with both kinds of traffic until its JIT has
// settled, then measured in the interleaved rounds. Tiered compilation of the connection and request paths takes
// seconds of CPU per process under load, and a cluster has a process per worker: a server started fresh each round
// (as this harness first did) had the workers' JIT in its Connection: close figures (~15 µs per connection).
var (warmKeepAlive, warmClose) = options.Smoke ? (TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)) : (TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10));
var servers = new Dictionary<string, Server>();
var cpuByThread = new List<(string Setup, string Role, string Thread, double MicrosecondsPerConnection)>();
try
{
    foreach (var setup in setups)
    {
        var server = servers[setup.Name] = await Server.StartAsync(setup);
        await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, warmKeepAlive);
        await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, warmClose);
        Console.WriteLine($"started and warmed up: {setup.Name}");
    }

    for (var round = 1; round <= options.Rounds; round++)
    {
        foreach (var setup in setups)
        {
            var server = servers[setup.Name];
            var treeBefore = server.TreeCpuSeconds();
            var keepAlive = await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, options.Duration);
            var treeBetween = server.TreeCpuSeconds();
            var cpuBefore = server.CpuSeconds();
            var close = await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, options.Duration);
            var cpuPer10k = setup.Name.StartsWith("plain", StringComparison.Ordinal) ? (double?)null : (server.CpuSeconds() - cpuBefore) / close.Requests * 10_000;
            var treeAfter = server.TreeCpuSeconds();
            results[setup.Name].Add(new Measured(keepAlive, close, cpuPer10k,
                (treeBetween - treeBefore) / keepAlive.Requests * 1e6, (treeAfter - treeBetween) / close.Requests * 1e6));
            var measured = results[setup.Name][^1];
            Console.WriteLine($"round {round} {setup.Name,-16} keep-alive {keepAlive.RequestsPerSecond,10:N0} req/s {measured.KeepAliveCpuMicroseconds,5:0.0} µs CPU/req   " +
                $"close {close.RequestsPerSecond,9:N0} req/s {measured.CloseCpuMicroseconds,5:0.0} µs CPU/req   errors {keepAlive.Errors + close.Errors}");
        }
    }

    // Where a warm server's CPU per new connection goes, thread by thread: plain Kestrel, then cluster-2's primary and workers.
    if (!options.ThroughputOnly)
    {
        foreach (var setup in setups.Where(s => s.Name is "plain" or "cluster-2"))
        {
            var server = servers[setup.Name];
            var before = server.CpuSecondsByThread();
            var run = await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, options.Smoke ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(5));
            foreach (var (key, seconds) in server.CpuSecondsByThread())
            {
                var used = seconds - before.GetValueOrDefault(key);
                if (used > 0)
                {
                    cpuByThread.Add((setup.Name, key.Role, key.Thread, used / run.Requests * 1e6));
                }
            }
        }
    }
}
finally
{
    foreach (var server in servers.Values)
    {
        await server.DisposeAsync();
    }
}

if (options.ThroughputOnly)
{
    var table = Report(options, setups, results, [], figures: null) + string.Concat(modeTables.Select(t => "\n" + t));
    Console.WriteLine();
    Console.WriteLine(table);
    return;
}

// Plain Kestrel's memory at idle: the reference for the primary's.
long plainIdleRss;
await using (var server = await Server.StartAsync(setups.First(s => s.Name == "plain")))
{
    await Task.Delay(TimeSpan.FromSeconds(2));
    plainIdleRss = server.ResidentBytes();
}

// The primary alone: memory at idle, and descriptors before and after many handed-off connections.
var primarySetup = setups.First(s => s.Name == "cluster-2");
long idleRss, idlePrivate, idlePss;
int fdsBefore, fdsAfter;
long connectionsForFds = 0;
await using (var server = await Server.StartAsync(primarySetup))
{
    await Task.Delay(TimeSpan.FromSeconds(2));
    (idleRss, idlePrivate, idlePss) = (server.ResidentBytes(), server.PrivateResidentBytes(), server.ProportionalBytes());

    // One short run first, so descriptors the runtime opens lazily on first use are not counted as growth.
    await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, TimeSpan.FromSeconds(1));
    fdsBefore = server.OpenFds();
    var target = options.Smoke ? 5_000 : 100_000;
    while (connectionsForFds < target)
    {
        connectionsForFds += (await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, TimeSpan.FromSeconds(options.Smoke ? 1 : 5))).Requests;
    }

    var settled = Stopwatch.StartNew();
    do
    {
        fdsAfter = server.OpenFds();
        await Task.Delay(100);
    }
    while (fdsAfter > fdsBefore && settled.Elapsed < TimeSpan.FromSeconds(5));
}

var fdsPerSecondSingle = await HandoffBenchmark.FdsPerSecondAsync(options.Smoke ? 20_000 : 500_000, perMessage: 1);
var fdsPerSecondBatched = await HandoffBenchmark.FdsPerSecondAsync(options.Smoke ? 20_000 : 2_000_000, perMessage: 16);
var handoffLatency = await HandoffBenchmark.LatencyAsync(options.Smoke ? 200 : 5_000);

var report = Report(options, setups, results, modeTables, new HandoffFigures(plainIdleRss, idleRss, idlePrivate, idlePss, fdsBefore, fdsAfter, connectionsForFds, fdsPerSecondSingle, fdsPerSecondBatched, handoffLatency, cpuByThread));
Directory.CreateDirectory(options.Output);
var file = Path.Combine(options.Output, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}{(options.Smoke ? "-smoke" : "")}.md");
await File.WriteAllTextAsync(file, report);
Console.WriteLine();
Console.WriteLine(report);
Console.WriteLine($"Written to {file}");

static IEnumerable<Setup> Setups(HarnessOptions options)
{
    (string, string[]) Bench(int port, params string[] extra) =>
        ("dotnet", [options.BenchApp, "--urls", $"http://127.0.0.1:{port}", .. extra]);

    yield return new Setup("plain", "plain Kestrel, one process (the ceiling)", port => Bench(port, "--plain"), 0);
    yield return new Setup("plain-nospin", "plain Kestrel, thread pool not spinning (the setting workers get)", port => Bench(port, "--plain"), 0)
    {
        OptIn = true,
        Environment = new Dictionary<string, string> { ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0" },
    };
    yield return new Setup("one-process", "the same app in one process (Cluster:Workers=0)", port => Bench(port, "--Cluster:Workers=0"), 0);
    yield return new Setup("cluster-1", "KestrelCluster, 1 worker, round-robin", port => Bench(port, "--Cluster:Workers=1"), 1);
    yield return new Setup("cluster-2", "KestrelCluster, 2 workers, round-robin", port => Bench(port, "--Cluster:Workers=2"), 2);
    yield return new Setup("cluster-3", "KestrelCluster, 3 workers, round-robin (more workers than cores on 2)",
        port => Bench(port, "--Cluster:Workers=3"), 3) { OptIn = true };
    yield return new Setup("cluster-2-lc", "KestrelCluster, 2 workers, least-connections", port => Bench(port, "--Cluster:Workers=2", "--Cluster:Scheduling=LeastConnections"), 2);
    yield return new Setup("cluster-2-io2", "KestrelCluster, 2 workers, round-robin, 2 IO queues per worker", port => Bench(port, "--Cluster:Workers=2", "--io-queues", "2"), 2) { OptIn = true };
    yield return new Setup("cluster-2-spin", "KestrelCluster, 2 workers, round-robin, thread pools spinning as by default in .NET", port => Bench(port, "--Cluster:Workers=2"), 2)
    {
        OptIn = true,
        Environment = new Dictionary<string, string> { ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "70" }, // the runtime's default; workers otherwise get 0
    };
    yield return new Setup("cluster-2-cpu1", "KestrelCluster, 2 workers, round-robin, each process sized for 1 CPU (DOTNET_PROCESSOR_COUNT=1)",
        port => Bench(port, "--Cluster:Workers=2"), 2)
    {
        OptIn = true,
        Environment = new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = "1" },
    };
    yield return new Setup("cluster-2-warm", "KestrelCluster, 2 workers, round-robin, each worker warmed up before it is ready (Cluster:WarmUpPath=/)",
        port => Bench(port, "--Cluster:Workers=2", "--Cluster:WarmUpPath=/"), 2) { OptIn = true };
    if (options.Baseline is not null)
    {
        yield return new Setup("cluster-2-baseline", $"KestrelCluster, 2 workers, round-robin, baseline build ({options.Baseline})",
            port => ("dotnet", [options.Baseline, "--urls", $"http://127.0.0.1:{port}", "--Cluster:Workers=2"]), 2);
    }

    yield return new Setup("cluster-2-shared", "KestrelCluster, 2 workers, shared listener (kernel balances)", port => Bench(port, "--Cluster:Workers=2", "--Cluster:Scheduling=Shared"), 2);
    yield return new Setup("cluster-2-reuseport", "KestrelCluster, 2 workers, a socket per worker (ReusePort)",
        port => Bench(port, "--Cluster:Workers=2", "--Cluster:Scheduling=ReusePort"), 2);
    if (options.NodeScript is not null)
    {
        yield return new Setup("node-2", "Node.js cluster, 2 workers, SCHED_RR", port => ("node", [options.NodeScript, port.ToString(CultureInfo.InvariantCulture), "2"]), 2);
    }
}

static (double P50, double P99) P50P99(double[] microseconds)
{
    var sorted = microseconds.Order().ToArray();
    return (sorted[sorted.Length / 2], sorted[(int)(sorted.Length * 0.99)]);
}

static string Percentiles(double[] microseconds)
{
    var (p50, p99) = P50P99(microseconds);
    return string.Create(CultureInfo.InvariantCulture, $"{p50:0.0} µs / {p99:0.0} µs");
}

// What the handoff adds to a new connection: the cluster's connect → ConnectionContext minus plain Kestrel's.
static string Added(HandoffLatency latency)
{
    var (clusterP50, clusterP99) = P50P99(latency.ClusterConnectToContext);
    var (plainP50, plainP99) = P50P99(latency.PlainConnectToContext);
    return string.Create(CultureInfo.InvariantCulture, $"{clusterP50 - plainP50:0.0} µs / {clusterP99 - plainP99:0.0} µs");
}

static string Header(HarnessOptions options)
{
    var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
    return string.Create(CultureInfo.InvariantCulture, $"# KestrelCluster benchmark{(options.Smoke ? " (smoke run: not a measurement)" : "")}\n\n" +
        $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC · {Environment.ProcessorCount} cores ({cpu}) shared with the load generator · " +
        $"{RuntimeInformation.OSDescription} · .NET {Environment.Version} · Release\n\n");
}

static string Report(HarnessOptions options, List<Setup> setups, Dictionary<string, List<Measured>> results, List<string> modeTables, HandoffFigures? figures)
{
    static double Median(IEnumerable<double> values) => Stats.Median(values);

    var plainKeepAlive = Median(results["plain"].Select(r => r.KeepAlive.RequestsPerSecond));
    var plainClose = Median(results["plain"].Select(r => r.Close.RequestsPerSecond));
    var text = new StringBuilder(Header(options));
    text.AppendLine(CultureInfo.InvariantCulture, $"Mode: **warm** (every setup started once, warmed, alive for the whole run). wrk -t{options.Threads} -c{options.Connections} -d{options.Duration.TotalSeconds}s on loopback, {options.Rounds} interleaved rounds, medians; ratios are to plain Kestrel in the same run.");
    text.AppendLine();
    text.AppendLine("| Setup | keep-alive req/s | × plain | p50 ms | p99 ms | `Connection: close` req/s | × plain | p50 ms | p99 ms | primary CPU s / 10k connections | server CPU µs / request, keep-alive · close | errors |");
    text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var setup in setups)
    {
        var runs = results[setup.Name];
        var keepAlive = Median(runs.Select(r => r.KeepAlive.RequestsPerSecond));
        var close = Median(runs.Select(r => r.Close.RequestsPerSecond));
        var cpuPer10k = runs.All(r => r.CpuPer10k is null) ? "–" : Median(runs.Select(r => r.CpuPer10k ?? 0)).ToString("0.00", CultureInfo.InvariantCulture);
        text.AppendLine(CultureInfo.InvariantCulture,
            $"| {setup.Description} | {keepAlive:N0} | {keepAlive / plainKeepAlive:0.00} | {Median(runs.Select(r => r.KeepAlive.P50Ms)):0.00} | {Median(runs.Select(r => r.KeepAlive.P99Ms)):0.00} " +
            $"| {close:N0} | {close / plainClose:0.00} | {Median(runs.Select(r => r.Close.P50Ms)):0.00} | {Median(runs.Select(r => r.Close.P99Ms)):0.00} | {cpuPer10k} " +
            $"| {Median(runs.Select(r => r.KeepAliveCpuMicroseconds)):0.0} · {Median(runs.Select(r => r.CloseCpuMicroseconds)):0.0} | {runs.Sum(r => r.KeepAlive.Errors + r.Close.Errors)} |");
    }

    foreach (var table in modeTables)
    {
        text.AppendLine();
        text.Append(table);
    }

    if (figures is null)
    {
        return text.ToString();
    }

    var (plainIdleRss, idleRss, idlePrivate, idlePss, fdsBefore, fdsAfter, connectionsForFds, fdsSingle, fdsBatched, latency, cpuByThread) = figures;
    text.AppendLine();
    text.AppendLine("| Handoff, no HTTP | |");
    text.AppendLine("|---|---:|");
    text.AppendLine(CultureInfo.InvariantCulture, $"| fds/s over SOCK_SEQPACKET, 1 fd per sendmsg | {fdsSingle:N0} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| fds/s over SOCK_SEQPACKET, 16 fds per sendmsg | {fdsBatched:N0} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| accept → fd received by the worker's reader thread, p50 / p99 ({latency.FdReceived.Length} connections, one at a time) | {Percentiles(latency.FdReceived)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| accept → ConnectionContext created in the worker (adds the thread-pool hop to Kestrel's accept loop, the Socket and Kestrel's `Create`), p50 / p99 | {Percentiles(latency.AcceptToContext)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| client connect() → ConnectionContext created, p50 / p99 (interleaved, {latency.PlainConnectToContext.Length} each) | cluster {Percentiles(latency.ClusterConnectToContext)}; plain Kestrel's own sockets transport {Percentiles(latency.PlainConnectToContext)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| **latency the handoff adds** (cluster − plain, connect() → ConnectionContext), p50 / p99 | {Added(latency)} |");
    static string Mb(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB";
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary RSS at idle (2 workers) | {Mb(idleRss)} ({(double)idleRss / plainIdleRss:0.00}× plain Kestrel's {Mb(plainIdleRss)}) |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary at idle: private (RssAnon) / proportional (PSS: framework files are shared with the workers) | {Mb(idlePrivate)} / {Mb(idlePss)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary open fds before / after {connectionsForFds:N0} connections | {fdsBefore} / {fdsAfter} |");
    text.AppendLine();
    text.AppendLine("CPU per new connection (`Connection: close`, one run each after a warm-up), by thread; `#` stands for digits in thread names:");
    text.AppendLine();
    text.AppendLine("| Setup | process | threads | µs / connection |");
    text.AppendLine("|---|---|---|---:|");
    foreach (var group in cpuByThread.GroupBy(c => c.Setup))
    {
        foreach (var row in group.Where(c => c.MicrosecondsPerConnection >= 0.05).OrderBy(c => c.Role).ThenByDescending(c => c.MicrosecondsPerConnection))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Setup} | {row.Role} | {row.Thread} | {row.MicrosecondsPerConnection:0.0} |");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key} | **total** | | **{group.Sum(c => c.MicrosecondsPerConnection):0.0}** |");
    }
    return text.ToString();
}

/// <summary>
/// One round of one setup: the two wrk runs, the primary's CPU per 10k new connections (cluster setups), and the CPU
/// all the server's processes used per request in each run (less noisy than req/s on a shared machine).
/// </summary>
internal sealed record Measured(WrkResult KeepAlive, WrkResult Close, double? CpuPer10k, double KeepAliveCpuMicroseconds, double CloseCpuMicroseconds);

/// <summary>The figures besides the wrk table.</summary>
internal sealed record HandoffFigures(long PlainIdleRss, long IdleRss, long IdlePrivate, long IdlePss, int FdsBefore, int FdsAfter, long ConnectionsForFds,
    double FdsSingle, double FdsBatched, HandoffLatency Latency, List<(string Setup, string Role, string Thread, double MicrosecondsPerConnection)> CpuByThread);

internal sealed class HarnessOptions
{
    public int Rounds { get; private set; } = 5;

    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(10);

    public int Threads { get; private set; } = 2;

    public int Connections { get; private set; } = 64;

    public bool Smoke { get; private set; }

    public HashSet<string>? Setups { get; private set; }

    public bool HandoffOnly { get; private set; }

    public bool ThroughputOnly { get; private set; }

    public string? Baseline { get; private set; }

    public string Output { get; private set; } = "results";

    public string BenchApp { get; private set; } = "";

    public string? NodeScript { get; private set; }

    public HashSet<string> Modes { get; private set; } = ["warm", "isolated"];

    public string? Variant { get; private set; }

    public string FaultApp { get; private set; } = "";

    public string? NodeFaults { get; private set; }

    public string? Pm2 { get; private set; }

    public string? FaultAppBaseline { get; private set; }

    public HashSet<string>? FaultScenarios { get; private set; }

    public int FaultsRate { get; private set; } = 2000;

    public TimeSpan FaultsDuration { get; private set; } = TimeSpan.FromSeconds(20);

    /// <summary>Rounds of the fault lab: 1 unless --rounds says otherwise (a round of every scenario takes ~10 minutes).</summary>
    public int FaultsRounds { get; private set; } = 1;

    public static HarnessOptions Parse(string[] args)
    {
        var options = new HarnessOptions();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds": options.Rounds = options.FaultsRounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--faultapp": options.FaultApp = args[++i]; break;
                case "--node-faults": options.NodeFaults = args[++i]; break;
                case "--pm2": options.Pm2 = args[++i]; break;
                case "--faultapp-baseline": options.FaultAppBaseline = Path.GetFullPath(args[++i]); break;
                case "--scenarios": options.FaultScenarios = [.. args[++i].Split(',')]; break;
                case "--rate": options.FaultsRate = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--fault-duration": options.FaultsDuration = TimeSpan.FromSeconds(int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--duration": options.Duration = TimeSpan.FromSeconds(int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--connections": options.Connections = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": options.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--smoke": options.Smoke = true; options.Rounds = 1; options.Duration = TimeSpan.FromSeconds(2); break;
                case "--setups": options.Setups = [.. args[++i].Split(',')]; break;
                case "--out": options.Output = args[++i]; break;
                case "--handoff-only": options.HandoffOnly = true; break;
                case "--throughput-only": options.ThroughputOnly = true; break;
                case "--baseline": options.Baseline = Path.GetFullPath(args[++i]); break;
                case "--benchapp": options.BenchApp = args[++i]; break;
                case "--node-script": options.NodeScript = args[++i]; break;
                case "--modes": options.Modes = [.. args[++i].Split(',')]; break;
                case "--variant": options.Variant = args[++i].Contains('=', StringComparison.Ordinal) ? args[i] : throw new ArgumentException("--variant takes NAME=VALUE."); break;
                default: throw new ArgumentException($"Unknown option {args[i]}. See the top of Program.cs.");
            }
        }

        if (options.Modes.Except(["warm", "isolated", "pinned", "h2", "rolling", "primary", "faults"]).FirstOrDefault() is { } unknown)
        {
            throw new ArgumentException($"--modes: unknown mode {unknown}; the modes are warm, isolated, pinned, h2, rolling, primary and faults.");
        }

        if (options.FaultScenarios?.Except(KestrelCluster.Benchmarks.Faults.FaultScenarios.All.Select(s => s.Name)).FirstOrDefault() is { } scenario)
        {
            throw new ArgumentException($"--scenarios: unknown scenario {scenario}; the scenarios are {string.Join(", ", KestrelCluster.Benchmarks.Faults.FaultScenarios.All.Select(s => s.Name))}.");
        }

        if (options.Modes.Contains("faults") && !File.Exists(options.FaultApp))
        {
            throw new ArgumentException($"--faultapp {options.FaultApp}: no such file. Run benchmarks/run.sh.");
        }

        if (!File.Exists(options.BenchApp))
        {
            throw new ArgumentException($"--benchapp {options.BenchApp}: no such file. Run benchmarks/run.sh.");
        }

        if (options.Baseline is not null && !File.Exists(options.Baseline))
        {
            throw new ArgumentException($"--baseline {options.Baseline}: no such file. Build the baseline's benchmarks/BenchApp in Release first.");
        }

        return options;
    }
}
