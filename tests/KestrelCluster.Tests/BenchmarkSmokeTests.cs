// The benchmark harness still works: a smoke run (one short round per setup) produces the results table, and the fault
// lab's smoke run its tables, pictures and timelines. They measure nothing; speed targets live in benchmarks/, never in
// a timed test.
using System.Diagnostics;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class BenchmarkSmokeTests
{
    [Fact]
    public async Task Harness_SmokeRun_WritesTheResultsTable()
    {
        var output = Directory.CreateTempSubdirectory("kc-bench-smoke-").FullName;
        try
        {
            await RunHarnessAsync(["--smoke", "--modes", "warm,isolated,primary", "--out", output]);
            var table = File.ReadAllText(Assert.Single(Directory.GetFiles(output, "*-smoke.md")));
            Assert.Contains("| plain Kestrel, one process (the ceiling) |", table, StringComparison.Ordinal);
            Assert.Contains("| KestrelCluster, 2 workers, round-robin |", table, StringComparison.Ordinal);
            Assert.Contains("accept → ConnectionContext created", table, StringComparison.Ordinal);
            Assert.Contains("latency the handoff adds", table, StringComparison.Ordinal);
            Assert.Contains("Mode: **warm**", table, StringComparison.Ordinal);
            Assert.Contains("Mode: **isolated (each setup fresh and alone)**", table, StringComparison.Ordinal);
            Assert.Contains("CPU µs / req cold", table, StringComparison.Ordinal);
            Assert.True(table.Contains("| primary, 2 accept threads, 2 sink workers |", StringComparison.Ordinal)
                || table.Contains("Primary mode skipped: it needs a writable cgroup", StringComparison.Ordinal), table);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public async Task FaultLab_SmokeRun_WritesATablePictureAndTimelinePerScenario()
    {
        var output = Directory.CreateTempSubdirectory("kc-faults-smoke-").FullName;
        try
        {
            await RunHarnessAsync(["--smoke", "--modes", "faults", "--out", output]);
            var folder = Assert.Single(Directory.GetDirectories(output, "*-faults-smoke"));
            var report = File.ReadAllText(Path.Combine(folder, "README.md"));
            Assert.Contains("Mode: **faults**", report, StringComparison.Ordinal);
            foreach (var scenario in new[] { "poison", "leak", "deploy", "starvation", "gc" })
            {
                var picture = File.ReadAllText(Path.Combine(folder, $"{scenario}.svg"));
                Assert.StartsWith("<svg", picture, StringComparison.Ordinal);
                // plain and the cluster (the smoke run skips Node and PM2), and for the deploy the cluster's SIGUSR2 too
                Assert.Equal(scenario == "deploy" ? 3 : 2, picture.Split("<polyline").Length - 1);
                var timeline = File.ReadAllLines(Path.Combine(folder, $"{scenario}.csv"));
                Assert.Equal("second,plain ok,plain failed,cluster-2 ok,cluster-2 failed", timeline[0].Replace(",cluster-2-usr2 ok,cluster-2-usr2 failed", "",
                    StringComparison.Ordinal));
                Assert.True(timeline.Length > 5, string.Join('\n', timeline));
                Assert.Contains($"![", report, StringComparison.Ordinal);
                Assert.Contains($"({scenario}.svg)", report, StringComparison.Ordinal);
            }

            // Every row has figures, and the load ran: requests were sent to every setup.
            foreach (var row in new[] { "| plain Kestrel, restarted on exit | 500 |", "| KestrelCluster, 2 workers | 500 |", "| KestrelCluster, SIGUSR2 | 500 |" })
            {
                Assert.Contains(row, report, StringComparison.Ordinal);
            }

            Assert.Contains("The limit is enforced by ", report, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    private static async Task RunHarnessAsync(string[] arguments)
    {
        var startInfo = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments.Prepend(Path.Combine(DotnetCli.RepositoryRoot, "benchmarks", "run.sh")))
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var name in startInfo.Environment.Keys.Where(AppProcess.IsAppConfiguration).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        using var harness = Process.Start(startInfo)!;
        var stdout = harness.StandardOutput.ReadToEndAsync();
        var stderr = harness.StandardError.ReadToEndAsync();
        try
        {
            await harness.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(6));
        }
        finally
        {
            if (!harness.HasExited)
            {
                harness.Kill(entireProcessTree: true); // the harness and the servers it started
            }
        }

        Assert.True(harness.ExitCode == 0, $"{await stdout}\n{await stderr}");
    }
}
