// The benchmark harness. Run it with benchmarks/run.sh (which builds Release and installs wrk when missing).
//   --rounds N        interleaved rounds (A B C … A B C …); default 5
//   --duration S      seconds per wrk run; default 10
//   --smoke           1 round of 2 s per case and small micro-benchmarks: proves the harness works, measures nothing
//   --setups a,b      only these setups (plain is always included: it is the reference)
//   --out DIR         where the Markdown table goes; default benchmarks/results
//   --handoff-only    only the accept → ConnectionContext latency micro-benchmark (for iterating on the handoff path)
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using KestrelCluster.Benchmarks;

var options = HarnessOptions.Parse(args);
if (options.HandoffOnly)
{
    var (received, created) = await HandoffBenchmark.AcceptToContextMicrosecondsAsync(5_000);
    Console.WriteLine($"accept → fd received {Percentiles(received)}; accept → ConnectionContext {Percentiles(created)} (p50 / p99)");
    return;
}

var setups = Setups(options).Where(s => s.Name == "plain" || (options.Setups is null ? !s.OptIn : options.Setups.Contains(s.Name))).ToList();
var results = setups.ToDictionary(s => s.Name, _ => new List<(WrkResult KeepAlive, WrkResult Close, double? CpuPer10k)>());

Console.WriteLine($"{setups.Count} setups, {options.Rounds} rounds, wrk -t{options.Threads} -c{options.Connections} -d{options.Duration.TotalSeconds}s");
for (var round = 1; round <= options.Rounds; round++)
{
    foreach (var setup in setups)
    {
        await using var server = await Server.StartAsync(setup);
        await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, TimeSpan.FromSeconds(1)); // warm-up
        var keepAlive = await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, options.Duration);
        var cpuBefore = server.CpuSeconds();
        var close = await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, options.Duration);
        var cpuPer10k = setup.Name.StartsWith("plain", StringComparison.Ordinal) ? (double?)null : (server.CpuSeconds() - cpuBefore) / close.Requests * 10_000;
        results[setup.Name].Add((keepAlive, close, cpuPer10k));
        Console.WriteLine($"round {round} {setup.Name,-16} keep-alive {keepAlive.RequestsPerSecond,10:N0} req/s   close {close.RequestsPerSecond,9:N0} req/s   errors {keepAlive.Errors + close.Errors}");
    }
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
var (fdReceived, contextCreated) = await HandoffBenchmark.AcceptToContextMicrosecondsAsync(options.Smoke ? 200 : 5_000);

var report = Report(options, setups, results, plainIdleRss, idleRss, idlePrivate, idlePss, fdsBefore, fdsAfter, connectionsForFds, fdsPerSecondSingle, fdsPerSecondBatched, fdReceived, contextCreated);
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
    yield return new Setup("cluster-1", "KestrelCluster, 1 worker, round-robin", port => Bench(port, "--Cluster:Workers=1"), 1);
    yield return new Setup("cluster-2", "KestrelCluster, 2 workers, round-robin", port => Bench(port, "--Cluster:Workers=2"), 2);
    yield return new Setup("cluster-2-lc", "KestrelCluster, 2 workers, least-connections", port => Bench(port, "--Cluster:Workers=2", "--Cluster:Scheduling=LeastConnections"), 2);
    yield return new Setup("cluster-2-io2", "KestrelCluster, 2 workers, round-robin, 2 IO queues per worker", port => Bench(port, "--Cluster:Workers=2", "--io-queues", "2"), 2) { OptIn = true };
    yield return new Setup("cluster-2-spin", "KestrelCluster, 2 workers, round-robin, thread pools spinning as by default in .NET", port => Bench(port, "--Cluster:Workers=2"), 2)
    {
        OptIn = true,
        Environment = new Dictionary<string, string> { ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "70" }, // the runtime's default; workers otherwise get 0
    };
    yield return new Setup("cluster-2-shared", "KestrelCluster, 2 workers, shared listener (kernel balances)", port => Bench(port, "--Cluster:Workers=2", "--Cluster:Scheduling=Shared"), 2);
    if (options.NodeScript is not null)
    {
        yield return new Setup("node-2", "Node.js cluster, 2 workers, SCHED_RR", port => ("node", [options.NodeScript, port.ToString(CultureInfo.InvariantCulture), "2"]), 2);
    }
}

static string Percentiles(double[] microseconds)
{
    var sorted = microseconds.Order().ToArray();
    return string.Create(CultureInfo.InvariantCulture, $"{sorted[sorted.Length / 2]:0.0} µs / {sorted[(int)(sorted.Length * 0.99)]:0.0} µs");
}

static string Report(HarnessOptions options, List<Setup> setups, Dictionary<string, List<(WrkResult KeepAlive, WrkResult Close, double? CpuPer10k)>> results,
    long plainIdleRss, long idleRss, long idlePrivate, long idlePss, int fdsBefore, int fdsAfter, long connectionsForFds, double fdsSingle, double fdsBatched, double[] fdReceived, double[] contextCreated)
{
    static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    var plainKeepAlive = Median(results["plain"].Select(r => r.KeepAlive.RequestsPerSecond));
    var plainClose = Median(results["plain"].Select(r => r.Close.RequestsPerSecond));
    var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
    var text = new StringBuilder();
    text.AppendLine(CultureInfo.InvariantCulture, $"# KestrelCluster benchmark{(options.Smoke ? " (smoke run: not a measurement)" : "")}");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC · {Environment.ProcessorCount} cores ({cpu}) shared with the load generator · {RuntimeInformation.OSDescription} · .NET {Environment.Version} · Release");
    text.AppendLine(CultureInfo.InvariantCulture, $"wrk -t{options.Threads} -c{options.Connections} -d{options.Duration.TotalSeconds}s on loopback, {options.Rounds} interleaved rounds, medians; ratios are to plain Kestrel in the same run.");
    text.AppendLine();
    text.AppendLine("| Setup | keep-alive req/s | × plain | p50 ms | p99 ms | `Connection: close` req/s | × plain | p50 ms | p99 ms | primary CPU s / 10k connections | errors |");
    text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var setup in setups)
    {
        var runs = results[setup.Name];
        var keepAlive = Median(runs.Select(r => r.KeepAlive.RequestsPerSecond));
        var close = Median(runs.Select(r => r.Close.RequestsPerSecond));
        var cpuPer10k = runs.All(r => r.CpuPer10k is null) ? "–" : Median(runs.Select(r => r.CpuPer10k ?? 0)).ToString("0.00", CultureInfo.InvariantCulture);
        text.AppendLine(CultureInfo.InvariantCulture,
            $"| {setup.Description} | {keepAlive:N0} | {keepAlive / plainKeepAlive:0.00} | {Median(runs.Select(r => r.KeepAlive.P50Ms)):0.00} | {Median(runs.Select(r => r.KeepAlive.P99Ms)):0.00} " +
            $"| {close:N0} | {close / plainClose:0.00} | {Median(runs.Select(r => r.Close.P50Ms)):0.00} | {Median(runs.Select(r => r.Close.P99Ms)):0.00} | {cpuPer10k} | {runs.Sum(r => r.KeepAlive.Errors + r.Close.Errors)} |");
    }

    text.AppendLine();
    text.AppendLine("| Handoff, no HTTP | |");
    text.AppendLine("|---|---:|");
    text.AppendLine(CultureInfo.InvariantCulture, $"| fds/s over SOCK_SEQPACKET, 1 fd per sendmsg | {fdsSingle:N0} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| fds/s over SOCK_SEQPACKET, 16 fds per sendmsg | {fdsBatched:N0} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| accept → fd received by the worker's reader thread, p50 / p99 ({fdReceived.Length} connections, one at a time) | {Percentiles(fdReceived)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| accept → ConnectionContext created (adds `new Socket(fd)` and Kestrel's `SocketConnectionContextFactory.Create`, which plain Kestrel pays too), p50 / p99 | {Percentiles(contextCreated)} |");
    static string Mb(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MB";
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary RSS at idle (2 workers) | {Mb(idleRss)} ({(double)idleRss / plainIdleRss:0.00}× plain Kestrel's {Mb(plainIdleRss)}) |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary at idle: private (RssAnon) / proportional (PSS: framework files are shared with the workers) | {Mb(idlePrivate)} / {Mb(idlePss)} |");
    text.AppendLine(CultureInfo.InvariantCulture, $"| primary open fds before / after {connectionsForFds:N0} connections | {fdsBefore} / {fdsAfter} |");
    return text.ToString();
}

internal sealed class HarnessOptions
{
    public int Rounds { get; private set; } = 5;

    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(10);

    public int Threads { get; private set; } = 2;

    public int Connections { get; private set; } = 64;

    public bool Smoke { get; private set; }

    public HashSet<string>? Setups { get; private set; }

    public bool HandoffOnly { get; private set; }

    public string Output { get; private set; } = "results";

    public string BenchApp { get; private set; } = "";

    public string? NodeScript { get; private set; }

    public static HarnessOptions Parse(string[] args)
    {
        var options = new HarnessOptions();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds": options.Rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--duration": options.Duration = TimeSpan.FromSeconds(int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--connections": options.Connections = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": options.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--smoke": options.Smoke = true; options.Rounds = 1; options.Duration = TimeSpan.FromSeconds(2); break;
                case "--setups": options.Setups = [.. args[++i].Split(',')]; break;
                case "--out": options.Output = args[++i]; break;
                case "--handoff-only": options.HandoffOnly = true; break;
                case "--benchapp": options.BenchApp = args[++i]; break;
                case "--node-script": options.NodeScript = args[++i]; break;
                default: throw new ArgumentException($"Unknown option {args[i]}. See the top of Program.cs.");
            }
        }

        if (!File.Exists(options.BenchApp))
        {
            throw new ArgumentException($"--benchapp {options.BenchApp}: no such file. Run benchmarks/run.sh.");
        }

        return options;
    }
}
