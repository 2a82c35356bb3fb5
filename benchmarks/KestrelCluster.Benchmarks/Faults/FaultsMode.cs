// The fault lab (benchmarks/run.sh --modes faults): what a cluster buys, measured side by side. Every scenario runs
// against every setup in turn (rounds interleave the setups), each setup started fresh in its own process group,
// warmed with the same load for a few seconds, then measured under an open-loop load at a constant rate while the fault
// strikes. Per scenario it writes a table, a picture (SVG) and the raw timeline (CSV) to results/<time>-faults/.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Benchmarks.Faults;

internal static class FaultsMode
{
    private static readonly TimeSpan s_bucket = TimeSpan.FromMilliseconds(100);

    public static async Task<string> RunAsync(HarnessOptions options, LabPaths paths, string output)
    {
        var duration = options.Smoke ? TimeSpan.FromSeconds(1) : options.FaultsDuration;
        var warmUp = options.Smoke ? TimeSpan.FromSeconds(0.3) : TimeSpan.FromSeconds(3);
        var rate = options.Smoke ? 500 : options.FaultsRate;
        var rounds = options.Smoke ? 1 : options.FaultsRounds;
        Directory.CreateDirectory(output);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Mode: **faults** — an open-loop load of {rate:N0} req/s (32 keep-alive connections, 10 % of requests on a new connection, " +
            $"a reconnect after any error, 5 s timeout; latency from each request's intended send time), {duration.TotalSeconds:0} s per run " +
            $"after {warmUp.TotalSeconds:0.#} s of warm-up, {rounds} round(s), every setup started fresh in its own process group.");
        text.AppendLine();
        foreach (var scenario in FaultScenarios.All.Where(s => options.FaultScenarios is null || options.FaultScenarios.Contains(s.Name)))
        {
            var setups = scenario.Setups.Where(s => Available(s, paths) && (!options.Smoke || s.Name is "plain" or "cluster-2" or "cluster-2-usr2"))
                .SelectMany(s => paths.FaultAppBaseline is not null && s.Kind == LabKind.Cluster
                    ? [s, s with { Name = $"{s.Name}-before", Description = $"{s.Description} (before)", Baseline = true, Color = "#8c564b" }]
                    : new[] { s })
                .SelectMany(s => options.Variant is { } variant && s.Kind == LabKind.Cluster
                    ? [s, s with { Name = $"{s.Name}+{variant}", Description = $"{s.Description}, {variant}", Variant = variant, Color = "#9467bd" }]
                    : new[] { s })
                .Where(s => options.Setups is null || options.Setups.Contains(s.Name)).ToList();
            var runDuration = duration * scenario.DurationFactor;
            var faults = scenario.FaultFractions.Select(f => runDuration * f).ToList();
            var runs = new List<(LabSetup Setup, FaultFigures Figures)>();
            string limitKind = "";
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var setup in setups)
                {
                    using var group = ProcessGroup.Create($"{scenario.Name}-{setup.Name}", scenario.MemoryLimit);
                    limitKind = group.Kind;
                    var figures = await RunOneAsync(scenario, setup, paths, group, rate, runDuration, warmUp, faults, options.Smoke);
                    runs.Add((setup, figures));
                    Console.WriteLine($"faults {scenario.Name,-10} round {round} {setup.Name,-15} {figures.Summary()}");
                }
            }

            text.Append(Table(scenario, runs, rate, scenario.MemoryLimit is null ? null : limitKind));
            var first = runs.GroupBy(r => r.Setup.Name).Select(g => g.First()).ToList();
            await File.WriteAllTextAsync(Path.Combine(output, $"{scenario.Name}.svg"),
                FaultChart.Svg($"{scenario.Title}: answered per 100 ms ({rate:N0} req/s sent)", rate * s_bucket.TotalSeconds, faults,
                    [.. first.Select(r => (r.Setup, r.Figures.OkPerBucket))]));
            await File.WriteAllTextAsync(Path.Combine(output, $"{scenario.Name}.csv"), Timeline(first));
            text.AppendLine(CultureInfo.InvariantCulture, $"![{scenario.Title}]({scenario.Name}.svg) — raw: [{scenario.Name}.csv]({scenario.Name}.csv)");
            text.AppendLine();
        }

        return text.ToString();
    }

    private static bool Available(LabSetup setup, LabPaths paths) => setup.Kind switch
    {
        LabKind.NodeCluster => paths.NodeScript is not null,
        LabKind.Pm2 => paths.NodeScript is not null && paths.Pm2 is not null,
        _ => true,
    };

    private static async Task<FaultFigures> RunOneAsync(FaultScenario scenario, LabSetup setup, LabPaths paths, ProcessGroup group, int rate,
        TimeSpan duration, TimeSpan warmUp, IReadOnlyList<TimeSpan> faults, bool smoke)
    {
        var port = FreePort();
        await using var target = await LabTarget.StartAsync(setup, paths, group, scenario.Configure(setup, smoke), port);
        var plan = new LoadPlan(port, rate, warmUp, Connections: 32, NewConnectionShare: 0.1, Timeout: TimeSpan.FromSeconds(5));
        await OpenLoad.RunAsync(plan);
        var killsBefore = group.LimitKills;
        var restartsBefore = target.Restarts;
        using var stop = new CancellationTokenSource();
        var load = OpenLoad.RunAsync(plan with { Duration = duration });
        var faulting = StrikeAsync(scenario.Action, target, faults, stop.Token);
        var record = await load;
        await stop.CancelAsync();
        await faulting;
        return FaultFigures.From(record, rate, duration, faults, s_bucket) with
        {
            LimitKills = group.LimitKills - killsBefore,
            Restarts = target.Restarts - restartsBefore,
        };
    }

    private static async Task StrikeAsync(FaultAction action, LabTarget target, IReadOnlyList<TimeSpan> faults, CancellationToken stop)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var background = new List<Task>();
        foreach (var fault in faults)
        {
            if (fault - clock.Elapsed is { Ticks: > 0 } wait)
            {
                try
                {
                    await Task.Delay(wait, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            switch (action)
            {
                case FaultAction.Poison:
                    background.Add(Task.Run(async () =>
                    {
                        using var connection = new LabConnection(target.Port);
                        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                        await connection.GetAsync("/poison", closeAfter: true, timeout.Token); // fails: the process ends
                    }, CancellationToken.None));
                    break;
                case FaultAction.Deploy:
                    var previous = background.LastOrDefault() ?? Task.CompletedTask; // one deploy at a time, as a pipeline runs them
                    background.Add(Task.Run(async () =>
                    {
                        await previous;
                        await target.DeployAsync();
                    }, CancellationToken.None));
                    break;
                case FaultAction.Blockers:
                    background.Add(OpenLoad.BackgroundAsync(target.Port, "/block?ms=50", FaultScenarios.Blockers, stop));
                    break;
            }
        }

        await Task.WhenAll(background);
    }

    private static string Table(FaultScenario scenario, List<(LabSetup Setup, FaultFigures Figures)> runs, int rate, string? limitKind)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"### {scenario.Title}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The fault: {scenario.Fault}.{(limitKind is null ? "" : $" The limit is enforced by {limitKind}.")}");
        text.AppendLine();
        text.AppendLine("| Setup | sent | failed | success | longest gap | back to full capacity | p50 ms | p99 ms | p99.9 ms | max ms | answered/s | killed at the limit | restarts |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (setup, f) in runs)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {setup.Description} | {f.Sent:N0} | {f.Failed:N0} | {f.SuccessPercent:0.00} % | {f.LongestGap.TotalSeconds:0.00} s | {f.Recovery()} " +
                $"| {f.P50Ms:0.0} | {f.P99Ms:0.0} | {f.P999Ms:0.0} | {f.MaxMs:0} | {f.AnsweredPerSecond:N0} " +
                $"| {(limitKind is null ? "—" : f.LimitKills.ToString(CultureInfo.InvariantCulture))} | {(setup.Kind == LabKind.Plain ? f.Restarts.ToString(CultureInfo.InvariantCulture) : "—")} |");
        }

        text.AppendLine();
        return text.ToString();
    }

    private static string Timeline(List<(LabSetup Setup, FaultFigures Figures)> runs)
    {
        var text = new StringBuilder("second," + string.Join(',', runs.SelectMany(r => new[] { $"{r.Setup.Name} ok", $"{r.Setup.Name} failed" })) + "\n");
        var buckets = runs.Max(r => r.Figures.OkPerBucket.Length);
        for (var i = 0; i < buckets; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"{i * s_bucket.TotalSeconds:0.0}");
            foreach (var (_, f) in runs)
            {
                text.Append(CultureInfo.InvariantCulture, $",{f.OkPerBucket.ElementAtOrDefault(i)},{f.FailedPerBucket.ElementAtOrDefault(i)}");
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
