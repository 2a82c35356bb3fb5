// The isolated and pinned modes: every setup started fresh and measured alone, in interleaved rounds — what a server
// sees after a deploy, a restart or a scale-up, and what a benchmark that starts servers one by one reports. The warm
// mode (Program.cs) keeps every setup alive and warmed for the whole run; the two disagree, and the harness reports both.
//
// One round of one setup: start it and wait until it serves; "cold": 5 s of keep-alive traffic right away (the JIT of
// the request path still running in each process); warm-up: 8 s Connection: close, 8 s keep-alive; then 5 s
// keep-alive and 5 s Connection: close, measured; stop it. Each run also records the CPU all the server's processes
// used per request. Pinned: the server and its children on one CPU, wrk on the other — the architecture's own
// overhead, without the load generator and several server processes contending for the same cores.
using System.Globalization;
using System.Text;

namespace KestrelCluster.Benchmarks;

/// <summary>One isolated round of one setup.</summary>
internal sealed record IsolatedRun(WrkResult Cold, double ColdCpu, WrkResult KeepAlive, double KeepAliveCpu, WrkResult Close, double CloseCpu);

internal static class IsolatedMode
{
    /// <summary>Setups measured when --setups does not name them: the reference, the architecture alone, the default cluster, Node.</summary>
    public static readonly string[] DefaultSetups = ["plain", "one-process", "cluster-1", "cluster-2", "cluster-2-reuseport", "node-2"];

    /// <summary>Setups of the pinned mode: plain and one worker (the architecture's overhead), and two workers on the one core.</summary>
    public static readonly string[] PinnedSetups = ["plain", "one-process", "cluster-1", "cluster-2", "cluster-2-reuseport"];

    public static async Task<string> RunAsync(HarnessOptions options, IReadOnlyList<Setup> setups, bool pinned)
    {
        if (pinned && Environment.ProcessorCount < 2)
        {
            return "Pinned mode skipped: it needs 2 CPUs (the server on one, wrk on the other).\n";
        }

        var (serverCpus, clientCpus) = pinned ? ("1", "0") : ((string?)null, (string?)null);
        TimeSpan Span(double s) => TimeSpan.FromSeconds(options.Smoke ? 1 : s);
        var results = setups.ToDictionary(s => s.Name, _ => new List<IsolatedRun>());
        var title = pinned ? "pinned (server on CPU 1, wrk on CPU 0)" : "isolated (each setup fresh and alone)";
        Console.WriteLine($"{title}: {setups.Count} setups, {options.Rounds} rounds");
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var setup in setups)
            {
                await using var server = await Server.StartAsync(setup with { Cpus = serverCpus });
                async Task<(WrkResult Result, double Cpu)> Measure(bool keepAlive, TimeSpan duration)
                {
                    var before = server.TreeCpuSeconds();
                    var result = await Wrk.RunAsync(server.Url, keepAlive, options.Threads, options.Connections, duration, clientCpus);
                    return (result, (server.TreeCpuSeconds() - before) / Math.Max(1, result.Requests) * 1e6);
                }

                var cold = await Measure(keepAlive: true, Span(5));
                await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, Span(8), clientCpus);
                await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, Span(8), clientCpus);
                var keepAliveRun = await Measure(keepAlive: true, Span(5));
                var closeRun = await Measure(keepAlive: false, Span(5));
                var run = new IsolatedRun(cold.Result, cold.Cpu, keepAliveRun.Result, keepAliveRun.Cpu, closeRun.Result, closeRun.Cpu);
                results[setup.Name].Add(run);
                Console.WriteLine($"{(pinned ? "pinned" : "isolated")} round {round} {setup.Name,-12} cold {run.Cold.RequestsPerSecond,9:N0} req/s {run.ColdCpu,5:0.0} µs CPU/req   " +
                    $"keep-alive {run.KeepAlive.RequestsPerSecond,9:N0} req/s {run.KeepAliveCpu,5:0.0} µs CPU/req   " +
                    $"close {run.Close.RequestsPerSecond,9:N0} req/s {run.CloseCpu,5:0.0} µs CPU/req");
            }
        }

        return Report(title, options, setups, results);
    }

    private static string Report(string title, HarnessOptions options, IReadOnlyList<Setup> setups, Dictionary<string, List<IsolatedRun>> results)
    {
        var plain = results["plain"];
        double Plain(Func<IsolatedRun, double> figure) => Stats.Median(plain.Select(figure));
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Mode: **{title}**, {options.Rounds} interleaved rounds, wrk -t{options.Threads} -c{options.Connections}, medians; " +
            $"× plain is the ratio to plain Kestrel in the same run (for CPU per request, lower is better).");
        text.AppendLine();
        text.AppendLine("| Setup | cold keep-alive req/s (first 5 s) | × plain | keep-alive req/s | × plain | `Connection: close` req/s | × plain | CPU µs / req cold | × plain | CPU µs / req keep-alive | × plain | CPU µs / req close | × plain | errors |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var setup in setups)
        {
            var runs = results[setup.Name];
            string Figure(Func<IsolatedRun, double> figure, string format)
            {
                var median = Stats.Median(runs.Select(figure));
                return median.ToString(format, CultureInfo.InvariantCulture) + " | " + (median / Plain(figure)).ToString("0.00", CultureInfo.InvariantCulture);
            }

            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {setup.Description} | {Figure(r => r.Cold.RequestsPerSecond, "N0")} | {Figure(r => r.KeepAlive.RequestsPerSecond, "N0")} " +
                $"| {Figure(r => r.Close.RequestsPerSecond, "N0")} | {Figure(r => r.ColdCpu, "0.0")} | {Figure(r => r.KeepAliveCpu, "0.0")} | {Figure(r => r.CloseCpu, "0.0")} " +
                $"| {runs.Sum(r => r.Cold.Errors + r.KeepAlive.Errors + r.Close.Errors)} |");
        }

        return text.ToString();
    }
}

internal static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
