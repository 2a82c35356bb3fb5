// Stops are stops: Ctrl+C in a terminal (SIGINT to the whole process group) and SIGTERM at any moment end the
// primary and every worker, and no worker that exits meanwhile is taken for a crash.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class StopTests
{
    [Fact]
    public async Task CtrlC_SigintToTheProcessGroup_TenFreshStarts_NoWorkerReplacedAndExitZero()
    {
        for (var run = 0; run < 10; run++)
        {
            // setsid: the app leads a process group of its own, as a shell job in a terminal does.
            using var app = AppProcess.StartWrapped(["setsid"], AppProcess.Sample, AppProcess.FreePortEnvironment(workers: 2));
            await app.WaitUntilServingAsync(workers: 2);
            var workers = app.Workers();

            TestProcesses.SignalGroup(app.ProcessId, TestProcesses.SIGINT);

            Assert.True(await app.WaitForExitAsync(TimeSpan.FromSeconds(30)), $"run {run}: the primary exits\n{app.Output}");
            Assert.True(app.Process.ExitCode == 0, $"run {run}: exit code {app.Process.ExitCode}\n{app.Output}");
            Assert.DoesNotContain("unexpectedly", app.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("replacement", app.Output, StringComparison.Ordinal);
            await Wait.UntilAsync(() => !workers.Any(ProcFs.IsAlive), TimeSpan.FromSeconds(10), $"run {run}: every worker has exited");
        }
    }

    [Fact]
    public async Task Sigterm_WhileManySlowWorkersStart_PrimaryAndEveryWorkerGoneWithinTheShutdownTimeout()
    {
        const int ShutdownTimeoutSeconds = 10;
        var environment = AppProcess.FreePortEnvironment(workers: 32);
        environment["TestApp__StartupDelayMs"] = "60000";
        environment["DOTNET_shutdownTimeoutSeconds"] = ShutdownTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        environment["DOTNET_hostBuilder__reloadConfigOnChange"] = "false"; // 32 apps: no inotify instance each
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        await app.WaitForOutputAsync("Worker 8 started", TimeSpan.FromSeconds(60));
        var workers = app.Workers();

        var signalled = System.Diagnostics.Stopwatch.StartNew();
        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGTERM);

        var deadline = TimeSpan.FromSeconds(ShutdownTimeoutSeconds + 5); // the timeout, plus the kill of the stragglers
        Assert.True(await app.WaitForExitAsync(deadline), $"the primary exits within the shutdown timeout\n{app.Output}");
        workers = [.. workers.Union(app.SeenWorkers)];
        await Wait.UntilAsync(() => !workers.Any(ProcFs.IsAlive), deadline - signalled.Elapsed + TimeSpan.FromSeconds(1), "every worker has exited");
        Assert.True(workers.Count >= 8, $"workers were starting: {workers.Count}");
        Assert.DoesNotContain("unexpectedly", app.Output, StringComparison.Ordinal);
    }
}
