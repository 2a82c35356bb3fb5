// The primary mode: what one primary can carry, per core. The workers are sinks (BenchApp --sink: Kestrel closes each
// connection as soon as it has it, so a worker only acknowledges and closes), the primary is pinned alone to CPU 1,
// and the workers and the load generator (a connect-and-wait-for-close loop, ConnectLoad) share CPU 0.
//
// Saturated, not merely busy: on 2 cores the load and the sinks cannot make a whole core of primary work (a connection
// costs them several times what it costs the primary), and a primary that is not saturated handles each connection on
// its own wake-ups, which costs far more per connection than the bursts it takes when connections queue. So the
// primary also gets a CPU quota (a cgroup: QuotaPercent of one CPU) small enough that it, and not the load, is the
// bottleneck — the backlog then fills and it accepts in bursts, as a saturated primary does — and its CPU per
// connection gives its capacity per core: 1 s / that cost. Plain Kestrel with --sink under the same quota is the
// reference: what accepting and closing a connection costs a process that does no handoff.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Benchmarks;

internal static class PrimaryMode
{
    private sealed record Run(double ConnectionsPerSecond, double MicrosecondsPerConnection, double Utilization);

    /// <summary>The measured process's CPU quota, in per cent of one CPU.</summary>
    private const int QuotaPercent = 4;

    public static async Task<string> RunAsync(HarnessOptions options, string harness)
    {
        if (Environment.ProcessorCount < 2)
        {
            return "Primary mode skipped: it needs 2 CPUs (the primary on one, the workers and the load on the other).\n";
        }

        if (!CpuQuota.IsAvailable())
        {
            return "Primary mode skipped: it needs a writable cgroup cpu controller (run as root) for the primary's CPU quota.\n";
        }

        (string, string[]) Bench(int port, params string[] extra) =>
            ("dotnet", [options.BenchApp, "--urls", $"http://127.0.0.1:{port}", "--sink", .. extra]);
        Setup[] setups =
        [
            new("plain-sink", "plain Kestrel, accepts and closes (no handoff)", port => Bench(port, "--plain"), 0) { Sink = true },
            new("primary-1", "primary, 1 accept thread, 2 sink workers", port => Bench(port, "--Cluster:Workers=2", "--Cluster:AcceptThreads=1"), 2) { Sink = true },
            new("primary-2", "primary, 2 accept threads, 2 sink workers", port => Bench(port, "--Cluster:Workers=2", "--Cluster:AcceptThreads=2"), 2) { Sink = true },
        ];

        var duration = TimeSpan.FromSeconds(options.Smoke ? 1 : 5);
        var concurrency = options.Connections;
        var results = setups.ToDictionary(s => s.Name, _ => new List<Run>());
        Console.WriteLine($"primary: {setups.Length} setups, {options.Rounds} rounds, {concurrency} concurrent connect loops on CPU 0");
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var setup in setups)
            {
                await using var server = await Server.StartAsync(setup with { Cpus = "0" });
                Pin(server.ProcessId, "1"); // the primary (or plain Kestrel) alone on CPU 1; its workers stay on CPU 0
                await ConnectLoadAsync(harness, server.Port, duration, concurrency); // warm: the JIT of the accept path
                using var quota = CpuQuota.TryCreate(server.ProcessId, QuotaPercent)
                    ?? throw new InvalidOperationException("The cgroup cpu controller stopped taking processes.");
                var before = server.CpuSeconds();
                var clock = Stopwatch.StartNew();
                var connections = await ConnectLoadAsync(harness, server.Port, duration, concurrency);
                var cpu = server.CpuSeconds() - before;
                var run = new Run(connections / clock.Elapsed.TotalSeconds, cpu / Math.Max(1, connections) * 1e6, cpu / clock.Elapsed.TotalSeconds);
                results[setup.Name].Add(run);
                Console.WriteLine($"primary round {round} {setup.Name,-11} {run.ConnectionsPerSecond,9:N0} connections/s  " +
                    $"{run.MicrosecondsPerConnection,5:0.0} µs CPU/connection ({run.Utilization:P1} of a CPU)  capacity {1e6 / run.MicrosecondsPerConnection,9:N0}/s per core");
            }
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Mode: **primary (its capacity per core)**, {options.Rounds} interleaved rounds of {duration.TotalSeconds:0} s, " +
            $"{concurrency} connect-and-wait-for-close loops; the measured process alone on CPU 1 with a {QuotaPercent} % CPU quota (so that it is " +
            $"the bottleneck), load and sink workers on CPU 0; medians.");
        text.AppendLine();
        text.AppendLine($"| Setup | new connections/s | CPU µs / connection | CPU used (quota {QuotaPercent} %) | capacity per core (1 s / CPU per connection) |");
        text.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var setup in setups)
        {
            var runs = results[setup.Name];
            var cost = Stats.Median(runs.Select(r => r.MicrosecondsPerConnection));
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {setup.Description} | {Stats.Median(runs.Select(r => r.ConnectionsPerSecond)):N0} | {cost:0.0} | {Stats.Median(runs.Select(r => r.Utilization)):P1} | {1e6 / cost:N0} |");
        }

        return text.ToString();
    }

    /// <summary>Moves every thread of <paramref name="pid"/> (not its children) to <paramref name="cpus"/>.</summary>
    private static void Pin(int pid, string cpus)
    {
        using var taskset = Process.Start(new ProcessStartInfo("taskset", ["-a", "-p", "-c", cpus, pid.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
        })!;
        taskset.WaitForExit();
        if (taskset.ExitCode != 0)
        {
            throw new InvalidOperationException($"taskset -a -p -c {cpus} {pid} failed with exit code {taskset.ExitCode}.");
        }
    }

    /// <summary>Runs the load generator (this harness with --connect-load) on CPU 0; returns the connections it completed.</summary>
    private static async Task<long> ConnectLoadAsync(string harness, int port, TimeSpan duration, int concurrency)
    {
        var startInfo = new ProcessStartInfo("taskset", ["-c", "0", "dotnet", harness, "--connect-load",
            port.ToString(CultureInfo.InvariantCulture), duration.TotalSeconds.ToString(CultureInfo.InvariantCulture),
            concurrency.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
        };
        using var client = Process.Start(startInfo)!;
        var output = await client.StandardOutput.ReadToEndAsync();
        await client.WaitForExitAsync();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("connections ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"The load generator printed no count: {output}");
        var parts = line.Split(' ');
        if (long.Parse(parts[3], CultureInfo.InvariantCulture) > 0)
        {
            throw new InvalidOperationException($"The load generator saw failed connections: {line}");
        }

        return long.Parse(parts[1], CultureInfo.InvariantCulture);
    }
}

/// <summary>A cgroup CPU quota for one process (cgroup v1 cpu controller, or v2 cpu.max), removed on dispose.</summary>
internal sealed class CpuQuota : IDisposable
{
    private readonly string _directory;
    private readonly string _parentProcs;
    private readonly int _pid;

    private CpuQuota(string directory, string parentProcs, int pid) => (_directory, _parentProcs, _pid) = (directory, parentProcs, pid);

    /// <summary>Whether a quota group can be made here (a cgroup cpu controller this process may write).</summary>
    public static bool IsAvailable()
    {
        var root = Directory.Exists("/sys/fs/cgroup/cpu") ? "/sys/fs/cgroup/cpu" : "/sys/fs/cgroup";
        try
        {
            Directory.Delete(Directory.CreateDirectory(Path.Combine(root, $"kc-bench-probe-{Environment.ProcessId}")).FullName);
            return File.Exists(Path.Combine(root, "cpu.cfs_quota_us")) || File.Exists(Path.Combine(root, "cgroup.controllers"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Puts <paramref name="pid"/> (all its threads, not its children) under a quota; null where cgroups are not writable.</summary>
    public static CpuQuota? TryCreate(int pid, int percent)
    {
        const int period = 100_000; // µs: the kernel's default period; a quota must be at least 1,000
        var quota = period * percent / 100;
        var name = $"kc-bench-{Environment.ProcessId}-{pid}";
        try
        {
            if (Directory.Exists("/sys/fs/cgroup/cpu") && File.Exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
            {
                var directory = Directory.CreateDirectory(Path.Combine("/sys/fs/cgroup/cpu", name)).FullName;
                File.WriteAllText(Path.Combine(directory, "cpu.cfs_period_us"), period.ToString(CultureInfo.InvariantCulture));
                File.WriteAllText(Path.Combine(directory, "cpu.cfs_quota_us"), quota.ToString(CultureInfo.InvariantCulture));
                File.WriteAllText(Path.Combine(directory, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
                return new CpuQuota(directory, "/sys/fs/cgroup/cpu/cgroup.procs", pid);
            }

            if (File.Exists("/sys/fs/cgroup/cgroup.controllers"))
            {
                var directory = Directory.CreateDirectory(Path.Combine("/sys/fs/cgroup", name)).FullName;
                File.WriteAllText(Path.Combine(directory, "cpu.max"), $"{quota} {period}");
                File.WriteAllText(Path.Combine(directory, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
                return new CpuQuota(directory, "/sys/fs/cgroup/cgroup.procs", pid);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    public void Dispose()
    {
        try
        {
            if (Directory.Exists($"/proc/{_pid}"))
            {
                File.WriteAllText(_parentProcs, _pid.ToString(CultureInfo.InvariantCulture)); // back to the root group
            }

            Directory.Delete(_directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>
/// The primary mode's load generator: a number of loops, each connecting to 127.0.0.1:port and waiting
/// for the server to close the connection, for the given time. Prints "connections N failed F".
/// </summary>
internal static class ConnectLoad
{
    public static async Task RunAsync(int port, TimeSpan duration, int concurrency)
    {
        var endpoint = new IPEndPoint(IPAddress.Loopback, port);
        long completed = 0, failed = 0;
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var buffer = new byte[1];
            while (Stopwatch.GetTimestamp() < deadline)
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(endpoint);
                    await socket.ReceiveAsync(buffer); // 0: the server closed it, as a sink does
                    Interlocked.Increment(ref completed);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
                {
                    Interlocked.Increment(ref completed); // closed with unread data or an abort: still served
                }
                catch (SocketException)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        })));
        Console.WriteLine($"connections {completed} failed {failed}");
    }
}
