// Supervision of apps started as separate processes, the way they run in production: signals to the primary,
// an app that cannot start, a worker too slow to start, and the primary as PID 1 in a container.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ProcessSupervisionTests
{
    [Fact]
    public async Task RollingRestart_OnSighupUnderLoad_NoRequestFailsAndTheOldWorkersAreGone()
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var before = sample.Workers();
        var load = LoadLoop.Start(endpoint);
        await load.WaitForMoreAsync(50);

        TestProcesses.Signal(sample.ProcessId, TestProcesses.SIGHUP);
        await sample.WaitForOutputAsync("Rolling restart (generation 1) done.", TimeSpan.FromSeconds(90));
        await load.WaitForMoreAsync(50);
        await load.StopAsync();

        Assert.Empty(load.Failures);
        await Wait.UntilAsync(() => !before.Any(ProcFs.IsAlive), TimeSpan.FromSeconds(30), "the old workers have exited");
        var after = sample.Workers();
        Assert.Equal(2, after.Count);
        Assert.Empty(after.Intersect(before));
        Assert.Subset(load.ServedBy.ToHashSet(), after.ToHashSet());
    }

    [Fact]
    public async Task RollingRestart_WhenTheNewVersionCannotStart_StopsAndTheOldWorkersKeepServing()
    {
        var brokenDeploy = Path.Combine(Path.GetTempPath(), $"kc-broken-{Guid.NewGuid():N}");
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["TestApp__FailStartupIfExists"] = brokenDeploy;
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        try
        {
            var endpoint = await app.WaitUntilServingAsync(workers: 2);
            var before = app.Workers();

            File.WriteAllText(brokenDeploy, "replacements fail from now on");
            TestProcesses.Signal(app.ProcessId, TestProcesses.SIGHUP);

            await app.WaitForOutputAsync("did not become ready; worker", TimeSpan.FromSeconds(60));
            await app.WaitForOutputAsync("rolling restart failed.", TimeSpan.FromSeconds(10));
            Assert.Contains("TestApp: failing startup on purpose.", app.Output, StringComparison.Ordinal);
            Assert.All(before, pid => Assert.True(ProcFs.IsAlive(pid), $"old worker {pid} still runs"));
            for (var i = 0; i < 6; i++)
            {
                Assert.Contains(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)), before);
            }
        }
        finally
        {
            File.Delete(brokenDeploy);
        }
    }

    [Fact]
    public async Task Scale_OnSigttinAndSigttou_OneWorkerMoreThenOneLess()
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        await sample.WaitUntilServingAsync(workers: 2);

        TestProcesses.Signal(sample.ProcessId, TestProcesses.SIGTTIN);
        await sample.WaitForOutputAsync("Worker 3 is ready (slot 2", TimeSpan.FromSeconds(60));
        Assert.Equal(3, sample.Workers().Count);

        TestProcesses.Signal(sample.ProcessId, TestProcesses.SIGTTOU);
        await sample.WaitForOutputAsync("Worker 3 (pid", TimeSpan.FromSeconds(60)); // "… exited with code 0."
        await Wait.UntilAsync(() => sample.Workers().Count == 2, TimeSpan.FromSeconds(10), "two workers remain");
    }

    [Fact]
    public async Task Worker_WithAStarvedThreadPool_PrimaryWarnsAndTheWorkerRecovers()
    {
        using var app = AppProcess.Start(AppProcess.TestApp, AppProcess.FreePortEnvironment(workers: 1));
        var endpoint = await app.WaitUntilServingAsync(workers: 1);
        var worker = Assert.Single(app.Workers());

        // Every pool thread blocked for 3 s, and no new one allowed: the heartbeat timer's callback waits that long.
        using (var client = HttpProbe.CreateClient())
        {
            Assert.Contains("pool threads for 3000 ms", await client.GetStringAsync($"http://{endpoint}/starve?ms=3000"), StringComparison.Ordinal);
        }

        await app.WaitForOutputAsync($"(pid {worker}) thread pool is starving", TimeSpan.FromSeconds(60));
        Assert.Matches(@"heartbeat ran \d{4,} ms late with \d+ work items queued", app.Output);

        // Starvation is a warning, not a death sentence: once the pool catches up, the same worker serves again.
        Assert.Equal(worker, HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint).WaitAsync(TimeSpan.FromSeconds(60))));
        Assert.Equal([worker], app.Workers());
    }

    [Fact]
    public async Task App_ThatThrowsAtStartupInEveryWorker_PrimaryExitsNonZeroWithTheError()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["TestApp__FailStartup"] = "true";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);

        Assert.True(await app.WaitForExitAsync(TimeSpan.FromSeconds(90)), "the primary gives up and exits");

        Assert.NotEqual(0, app.Process.ExitCode);
        Assert.Contains("TestApp: failing startup on purpose.", app.Output, StringComparison.Ordinal);
        Assert.Contains("No worker has ever started", app.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_NotReadyWithinWorkerStartTimeout_IsKilledAsAFailedStart()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 1);
        environment["TestApp__StartupDelayMs"] = "30000";
        environment["Cluster__WorkerStartTimeout"] = "00:00:01";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);

        await app.WaitForOutputAsync("was not ready within 00:00:01; killing it.", TimeSpan.FromSeconds(60));
        Assert.True(await app.WaitForExitAsync(TimeSpan.FromSeconds(90)), "with no worker ever ready, the primary gives up");
        Assert.Equal(1, app.Process.ExitCode);
    }

    [Fact]
    public async Task Primary_AsPid1InAContainer_ReapsOrphansAndStopsGracefullyOnSigterm()
    {
        Assert.True(OperatingSystem.IsLinux() && File.Exists("/usr/bin/unshare") && Environment.UserName == "root",
            "this test needs Linux PID namespaces: unshare from util-linux, run as root");
        using var app = AppProcess.StartWrapped(["unshare", "--pid", "--fork", "--mount-proc"], AppProcess.Sample, AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var primary = Assert.Single(ProcFs.ChildrenOf(app.ProcessId)); // unshare's child: PID 1 inside
        Assert.Contains("NSpid:\t" + primary + "\t1", File.ReadAllText($"/proc/{primary}/status"), StringComparison.Ordinal);
        Assert.Contains("Hello from worker", await HttpProbe.NewConnectionRequestAsync(endpoint), StringComparison.Ordinal);

        // An orphan in the container: its parent exits at once, so it is re-parented to PID 1 (the primary).
        using (var orphanMaker = System.Diagnostics.Process.Start("nsenter", ["--target", primary.ToString(System.Globalization.CultureInfo.InvariantCulture), "--pid", "--mount", "--", "sh", "-c", "sleep 1 & exit 0"]))
        {
            await orphanMaker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        await Wait.UntilAsync(() => ProcFs.ChildrenOf(primary).Count == 3 || ProcFs.ZombieChildrenOf(primary).Count > 0, TimeSpan.FromSeconds(5), "the orphan belongs to the primary");
        await Wait.UntilAsync(() => ProcFs.ChildrenOf(primary).Count == 2 && ProcFs.ZombieChildrenOf(primary).Count == 0, TimeSpan.FromSeconds(10),
            "the orphan has exited and been reaped");

        TestProcesses.Signal(primary, TestProcesses.SIGTERM);
        Assert.True(await app.WaitForExitAsync(TimeSpan.FromSeconds(30)), "the primary exits");
        Assert.Equal(0, app.Process.ExitCode);
    }
}
