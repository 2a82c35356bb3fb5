// A rolling restart under load: each cluster setup is started and warmed as in the warm mode, then measured with
// back-to-back 2 s wrk runs (Connection: close, so new connections reach the new workers as soon as they are ready):
// three before a SIGHUP, then until the primary logs that the restart is done. The figure is the throughput during the
// restart as a share of the throughput before it — its mean, and its worst 2 s.
using System.Globalization;
using System.Text;

namespace KestrelCluster.Benchmarks;

internal static class RollingMode
{
    private const int SigHup = 1;

    public static readonly string[] DefaultSetups = ["cluster-2", "cluster-2-warm"];

    public static async Task<string> RunAsync(HarnessOptions options, IReadOnlyList<Setup> selected)
    {
        var setups = selected.Where(s => s.ReadyLines > 0).ToList(); // clusters only: plain Kestrel has no workers to restart
        var window = TimeSpan.FromSeconds(2);
        var rows = new List<(Setup Setup, double Before, double During, double Worst, int Windows, long Errors)>();
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var setup in setups)
            {
                await using var server = await Server.StartAsync(setup);
                await Wrk.RunAsync(server.Url, keepAlive: true, options.Threads, options.Connections, TimeSpan.FromSeconds(options.Smoke ? 1 : 5));
                await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, TimeSpan.FromSeconds(options.Smoke ? 1 : 10));
                var before = new List<WrkResult>();
                for (var i = 0; i < 3; i++)
                {
                    before.Add(await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, window));
                }

                server.Signal(SigHup);
                var during = new List<WrkResult>();
                var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
                while (!server.HasSaid(") done.") && DateTime.UtcNow < deadline)
                {
                    during.Add(await Wrk.RunAsync(server.Url, keepAlive: false, options.Threads, options.Connections, window));
                }

                if (!server.HasSaid(") done."))
                {
                    throw new TimeoutException($"{setup.Name}: the rolling restart did not finish within 2 minutes.");
                }

                var baseline = Stats.Median(before.Select(r => r.RequestsPerSecond));
                var row = (setup, baseline, during.Average(r => r.RequestsPerSecond) / baseline, during.Min(r => r.RequestsPerSecond) / baseline,
                    during.Count, before.Sum(r => r.Errors) + during.Sum(r => r.Errors));
                rows.Add(row);
                Console.WriteLine($"rolling round {round} {setup.Name,-16} before {baseline,9:N0} req/s, during {row.Item3:0.00}× (worst 2 s {row.Item4:0.00}×) " +
                    $"over {during.Count} × 2 s, errors {row.Item6}");
            }
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Mode: **rolling restart under load** (SIGHUP during back-to-back 2 s `Connection: close` wrk runs, " +
            $"{options.Rounds} rounds, medians; a ratio is the throughput during the restart over the throughput just before it).");
        text.AppendLine();
        text.AppendLine("| Setup | req/s before | during, mean × before | during, worst 2 s × before | 2 s windows | errors |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var group in rows.GroupBy(r => r.Setup.Name))
        {
            var setup = group.First().Setup;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {setup.Description} | {Stats.Median(group.Select(r => r.Before)):N0} | {Stats.Median(group.Select(r => r.During)):0.00} " +
                $"| {Stats.Median(group.Select(r => r.Worst)):0.00} | {Stats.Median(group.Select(r => (double)r.Windows)):0} | {group.Sum(r => r.Errors)} |");
        }

        return text.ToString();
    }
}
