// How the primary treats what started it: under `dotnet watch` the app runs in one process (hot reload cannot reach
// workers) unless told otherwise, and a primary started by `dotnet run` does not outlive it.
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class LauncherTests
{
    [Fact]
    public async Task DotnetWatch_RunsTheAppInOneProcess_AndSaysHowToForceWorkers()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["DOTNET_WATCH"] = "1";
        using var sample = AppProcess.Start(environment);
        var endpoint = await sample.WaitUntilServingAsync(workers: 0);
        await sample.WaitForOutputAsync("Running in one process under dotnet watch", TimeSpan.FromSeconds(10));

        Assert.Equal(sample.ProcessId, HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)));
        Assert.Empty(sample.Workers());
        Assert.Contains("Set Cluster:WorkersUnderDotnetWatch=true to run workers anyway.", sample.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DotnetWatch_WithWorkersForced_RunsWorkers()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["DOTNET_WATCH"] = "1";
        environment["Cluster__WorkersUnderDotnetWatch"] = "true";
        using var sample = AppProcess.Start(environment);
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);

        Assert.Contains(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)), sample.Workers());
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Primary_StartedByDotnetRun_StopsWithItsWorkersWhenDotnetRunIsKilled()
    {
        // A stand-in for `dotnet run`: a script called dotnet, run as `dotnet run <the app>`, that starts the app and waits.
        using var launcher = new StandInParent("dotnet", shiftFirstArgument: true);
        using var app = AppProcess.StartWrapped([launcher.ScriptPath, "run"], AppProcess.Sample, AppProcess.FreePortEnvironment(workers: 2));
        await app.WaitUntilServingAsync(workers: 2);
        var primary = Assert.Single(ProcFs.ChildrenOf(app.ProcessId));
        var workers = ProcFs.ChildrenOf(primary);
        Assert.Equal(2, workers.Count);
        await app.WaitForOutputAsync($"Started by dotnet run (pid {app.ProcessId}): the cluster stops when it exits",
            TimeSpan.FromSeconds(10));

        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGKILL);

        // The output is read asynchronously: wait for the line itself, not only for the processes to be gone.
        await app.WaitForOutputAsync($"dotnet run (pid {app.ProcessId}) exited; stopping the cluster.", TimeSpan.FromSeconds(15));
        await Wait.UntilAsync(() => !ProcFs.IsAlive(primary) && !workers.Any(ProcFs.IsAlive), TimeSpan.FromSeconds(15),
            "the primary and its workers have exited");
    }

    [Theory]
    [InlineData("/usr/share/dotnet/dotnet run --project samples/HelloCluster", "dotnet run")]
    [InlineData("dotnet watch --project x", "dotnet watch")]
    [InlineData("/usr/share/dotnet/dotnet /usr/share/dotnet/sdk/10.0.401/DotnetTools/dotnet-watch/x/tools/net10.0/any/dotnet-watch.dll --verbose", "dotnet watch")]
    [InlineData("/bin/sh /tmp/x/dotnet run /usr/bin/dotnet app.dll", "dotnet run")]
    [InlineData("/usr/share/dotnet/dotnet HelloCluster.dll", null)]
    [InlineData("/bin/bash -c dotnet run", null)]
    [InlineData("/lib/systemd/systemd --user", null)]
    public void LauncherName_OnlyDotnetRunAndDotnetWatch_AreFollowed(string commandLine, string? expected) =>
        Assert.Equal(expected, LauncherWatch.LauncherName(commandLine.Split(' ')));
}
