// The benchmark harness still works: a smoke run (one short round per setup) produces the results table.
// It measures nothing; speed targets live in benchmarks/, never in a timed test.
using System.Diagnostics;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class BenchmarkSmokeTests
{
    [Fact]
    public async Task Harness_SmokeRun_WritesTheResultsTable()
    {
        var root = DotnetCli.RepositoryRoot;

        var output = Directory.CreateTempSubdirectory("kc-bench-smoke-").FullName;
        try
        {
            var startInfo = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in new[] { Path.Combine(root, "benchmarks", "run.sh"), "--smoke", "--modes", "warm,isolated,primary", "--out", output })
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
}
