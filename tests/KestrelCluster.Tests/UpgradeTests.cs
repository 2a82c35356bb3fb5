// A primary upgrade from outside, as an operator runs it: SIGUSR2 (or `kestrel-cluster upgrade`) to a primary started as a
// service would be, under load. The new primary takes the very listening sockets over (same inodes, never closed: the
// kernel refuses nothing, nstat's ListenOverflows and ListenDrops stay put), its workers serve, a slow request in the old
// workers completes, and the old processes exit. A new primary that cannot start is stopped and the old one serves on;
// where an upgrade cannot work (PID 1, a test host) it is refused with the reason.
//
// The new primary outlives the test's child (the old primary): every test kills it and what it started, by id.
using System.Globalization;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)] // alone: the kernel's listen counters are the whole machine's
public sealed partial class UpgradeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kc-upgrade-").FullName;
    private readonly List<int> _successors = [];

    [Theory]
    [InlineData("RoundRobin")]
    [InlineData("ReusePort")] // a listening socket per worker slot, every one taken over
    public async Task Sigusr2_UnderLoad_TheNewPrimaryTakesTheSameSocketsOver_NothingFailsOrIsRefused_TheOldProcessesExit(string scheduling)
    {
        var unixPath = Path.Combine(_directory, "app.sock");
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Kestrel__Endpoints__Unix__Url"] = $"http://unix:{unixPath}";
        environment["Cluster__Scheduling"] = scheduling;
        using var app = AppProcess.Start(environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var oldWorkers = app.Workers();
        var inodes = ProcFs.ListeningTcpInodes(endpoint.Port);
        var (overflows, drops) = (ProcFs.TcpExtCounter("ListenOverflows"), ProcFs.TcpExtCounter("ListenDrops"));

        var load = LoadLoop.Start(endpoint);
        using var wrk = WrkLoad.Start(endpoint, connections: 8); // keep-alive connections that never retry
        await load.WaitForMoreAsync(50);
        var slow = HttpProbe.NewConnectionRequestAsync(endpoint, "/slow?ms=5000");
        await app.WaitForOutputAsync("Slow request: sleeping 5000 ms.", TimeSpan.FromSeconds(30));

        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGUSR2);
        var successor = await SuccessorAsync(app);
        await app.WaitForOutputAsync($"this process (pid {successor}) is the primary now.", TimeSpan.FromSeconds(90));
        await Wait.UntilAsync(() => !ProcFs.IsAlive(app.ProcessId), TimeSpan.FromSeconds(60), "the old primary exits once drained");
        var newWorkers = ProcFs.ChildrenOf(successor);
        await load.WaitForMoreAsync(100);
        var slowAnswer = await slow;
        await load.StopAsync();
        var wrkSummary = await wrk.StopAsync();

        Assert.True(load.Failures.Count == 0, string.Join('\n', load.Failures.Take(10)));
        Assert.Matches(@"\d+ requests in", wrkSummary);
        Assert.True(!wrkSummary.Contains("Socket errors", StringComparison.Ordinal) && !wrkSummary.Contains("Non-2xx",
            StringComparison.Ordinal), "wrk saw failures (its keep-alive connections are told to reconnect before a drain):\n" + wrkSummary);
        Assert.StartsWith("HTTP/1.1 200", slowAnswer, StringComparison.Ordinal);
        Assert.Contains(HttpProbe.ServedBy(slowAnswer), oldWorkers); // in flight in an old worker, which finished it
        Assert.Equal(2, newWorkers.Count);
        Assert.Contains(load.ServedBy, newWorkers.Contains);
        Assert.All(oldWorkers, pid => Assert.False(ProcFs.IsAlive(pid), $"old worker {pid} has exited"));

        // The same sockets, held by the new primary alone; none was ever closed, so the kernel refused nothing.
        Assert.Equal(scheduling == "ReusePort" ? 2 : 1, inodes.Count);
        Assert.Equal(inodes, ProcFs.ListeningTcpInodes(endpoint.Port));
        Assert.Subset(ProcFs.SocketInodes(successor), inodes);
        Assert.Equal(overflows, ProcFs.TcpExtCounter("ListenOverflows"));
        Assert.Equal(drops, ProcFs.TcpExtCounter("ListenDrops"));

        // The Unix domain socket too: its file was left in place for the new primary, whose workers answer on it.
        var overUnix = await HttpProbe.NewConnectionRequestAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(unixPath));
        Assert.Contains(HttpProbe.ServedBy(overUnix), newWorkers);
        Assert.Matches($@"the new primary \(pid {successor}\) is ready and accepting\. This primary has stopped accepting, passed it \d+ " +
            "waiting connections, and now drains its 2 workers and exits.", app.Output);
        Assert.DoesNotContain("fail:", app.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_ANewPrimaryThatCannotStart_IsStoppedAndTheOldOneServesOn_ThenTheToolUpgradesIt_SystemdFollows()
    {
        var broken = Path.Combine(_directory, "broken");
        using var notify = new NotifyListener(Path.Combine(_directory, "notify.sock"));
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["TestApp__FailStartupIfExists"] = broken; // workers started while it exists fail: a broken deploy
        environment["Cluster__PrimaryUpgradeTimeout"] = "00:00:30";
        environment["NOTIFY_SOCKET"] = notify.Path;
        environment["TMPDIR"] = _directory; // where the tool finds the admin socket
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var workers = app.Workers();
        await Wait.UntilAsync(() => notify.Messages.Contains("READY=1\nSTATUS=2/2 workers ready"), TimeSpan.FromSeconds(10), "READY=1");

        // A broken deploy: the new primary's workers cannot start, so it never becomes ready and is stopped.
        await File.WriteAllTextAsync(broken, "");
        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGUSR2);
        var failed = await SuccessorAsync(app);
        await app.WaitForOutputAsync("This primary keeps serving.", TimeSpan.FromSeconds(90));
        Assert.Matches($@"Primary upgrade failed: the new primary \(pid {failed}\) (exited before it was ready|was not ready within)",
            app.Output);
        Assert.False(ProcFs.IsAlive(failed), "the failed new primary is gone");
        Assert.Equal(workers, app.Workers());
        Assert.All(await ServedByAsync(endpoint), pid => Assert.Contains(pid, workers));
        Assert.Matches(@"^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=Upgrading the primary: new primary pid \d+ starting$",
            notify.Messages.Single(m => m.StartsWith("RELOADING=1", StringComparison.Ordinal)));
        await Wait.UntilAsync(() => notify.Messages.Last() == "READY=1\nSTATUS=2/2 workers ready", TimeSpan.FromSeconds(10),
            "READY=1 again after the failed upgrade");

        // Fixed: the tool upgrades it, and answers once the new primary has taken over. systemd is told to follow it.
        File.Delete(broken);
        var (exitCode, output, error) = await ClusterTool.RunAsync(_directory, "upgrade",
            app.ProcessId.ToString(CultureInfo.InvariantCulture));
        Assert.True(exitCode == 0, $"kestrel-cluster upgrade: {exitCode}\n{output}\n{error}\n{app.Output}");
        var successor = await SuccessorAsync(app, skip: 1);
        Assert.Contains($"Primary upgraded: the new primary (pid {successor}) has taken over", output, StringComparison.Ordinal);
        await Wait.UntilAsync(() => !ProcFs.IsAlive(app.ProcessId), TimeSpan.FromSeconds(60), "the old primary exits once drained");
        var newWorkers = ProcFs.ChildrenOf(successor);
        Assert.All(await ServedByAsync(endpoint), pid => Assert.Contains(pid, newWorkers));

        // READY=1 from the new primary, once it is the main process.
        await Wait.UntilAsync(() => notify.Messages.SkipWhile(m => !m.StartsWith("MAINPID=", StringComparison.Ordinal))
            .Contains("READY=1\nSTATUS=2/2 workers ready"), TimeSpan.FromSeconds(10), "READY=1 after MAINPID=");
        Assert.Equal($"MAINPID={successor}\nSTATUS=Handing over to the new primary (pid {successor})",
            notify.Messages.First(m => m.StartsWith("MAINPID=", StringComparison.Ordinal)));
        Assert.DoesNotContain(notify.Messages, m => m.StartsWith("STOPPING=1", StringComparison.Ordinal)); // the service goes on
    }

    [Fact]
    public async Task Upgrade_ConnectionsTheOldPrimaryStillHeld_WaitingOrInAStalledWorker_AreServedByTheNewPrimary()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Cluster__MaxHandoffsInFlight"] = "1"; // a stalled worker holds one connection; the rest wait in the primary
        environment["Cluster__WorkerTimeout"] = "00:02:00"; // stalled, not hung: the stop kills them
        environment["DOTNET_shutdownTimeoutSeconds"] = "3";
        environment["TMPDIR"] = _directory;
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var oldWorkers = app.Workers();
        try
        {
            foreach (var pid in oldWorkers)
            {
                TestProcesses.Signal(pid, TestProcesses.SIGSTOP);
            }

            // 8 clients: one connection in each stalled worker, 6 waiting in the old primary.
            var requests = Enumerable.Range(0, 8).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint)).ToList();
            await Wait.UntilAsync(() => PendingConnections(app.ProcessId) == 6, TimeSpan.FromSeconds(30), "6 connections wait");

            TestProcesses.Signal(app.ProcessId, TestProcesses.SIGUSR2);
            var successor = await SuccessorAsync(app);
            var answers = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(90));

            // The 6 waiting went over at the handover; the 2 in the stalled workers when the stop killed them.
            var newWorkers = ProcFs.ChildrenOf(successor);
            Assert.All(answers, a => Assert.StartsWith("HTTP/1.1 200", a, StringComparison.Ordinal));
            Assert.All(answers, a => Assert.Contains(HttpProbe.ServedBy(a), newWorkers));
            Assert.Contains("passed it 6 waiting connections", app.Output, StringComparison.Ordinal);
            await Wait.UntilAsync(() => !ProcFs.IsAlive(app.ProcessId), TimeSpan.FromSeconds(30), "the old primary exits");
            Assert.DoesNotContain("could not be passed to the new primary", app.Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var pid in oldWorkers)
            {
                TestProcesses.KillIfAlive(pid);
            }
        }
    }

    [Fact]
    public async Task Upgrade_WhenTheOldPrimaryDiesAfterGivingItsSockets_TheNewOneServesAlone()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["TestApp__StartupDelayMs"] = "3000"; // the new primary's workers take a while: the old one dies meanwhile
        environment["TMPDIR"] = _directory;
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var oldWorkers = app.Workers();

        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGUSR2);
        var successor = await SuccessorAsync(app);
        // Every socket taken over (its workers starting, so its Kestrel has bound them all), and not yet handed over.
        await Wait.UntilAsync(() => StartingWorkersPattern().Count(app.Output) == 2, TimeSpan.FromSeconds(30),
            "the new primary starts its workers");
        Assert.Equal(2, Regex.Count(app.Output, $"from primary {app.ProcessId}: the same listening socket, never closed."));
        Assert.DoesNotContain("is the primary now", app.Output, StringComparison.Ordinal);
        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGKILL);

        await app.WaitForOutputAsync($"The previous primary (pid {app.ProcessId}) went away before it handed over",
            TimeSpan.FromSeconds(60));
        await Wait.UntilAsync(() => ProcFs.ChildrenOf(successor).Count == 2 && oldWorkers.All(pid => !ProcFs.IsAlive(pid)),
            TimeSpan.FromSeconds(30), "the new workers run and the old ones are gone");
        var newWorkers = ProcFs.ChildrenOf(successor);
        Assert.All(await ServedByAsync(endpoint), pid => Assert.Contains(pid, newWorkers));

        var (exitCode, output, _) = await ClusterTool.RunAsync(_directory, "status", "--json",
            successor.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(0, exitCode);
        using var status = System.Text.Json.JsonDocument.Parse(output);
        Assert.Equal(app.ProcessId, status.RootElement.GetProperty("primary").GetProperty("upgradedFrom").GetInt32());
    }

    [Fact]
    public async Task Sigusr2_ToAPrimaryThatIsPid1_IsRefusedWithTheReason_AndItServesOn()
    {
        Assert.True(OperatingSystem.IsLinux() && File.Exists("/usr/bin/unshare") && Environment.UserName == "root",
            "this test needs Linux PID namespaces: unshare from util-linux, run as root");
        using var app = AppProcess.StartWrapped(["unshare", "--pid", "--fork", "--mount-proc"], AppProcess.Sample,
            AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var primary = Assert.Single(ProcFs.ChildrenOf(app.ProcessId)); // unshare's child: PID 1 inside

        TestProcesses.Signal(primary, TestProcesses.SIGUSR2);
        await app.WaitForOutputAsync("Primary upgrade not started: this primary is PID 1", TimeSpan.FromSeconds(30));
        Assert.Equal(2, ProcFs.ChildrenOf(primary).Count);
        Assert.NotEmpty(await ServedByAsync(endpoint));
        Assert.DoesNotContain("new primary started", app.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UpgradePrimaryAsync_InATestHost_ThrowsWithTheReason()
    {
        await using var factory = new ClusterAppFactory(AppProcess.FreePortEnvironment(workers: 1));
        await factory.StartAsync(workers: 1);
        var manager = factory.Services.GetRequiredService<IClusterManager>();

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => manager.UpgradePrimaryAsync());
        Assert.Contains("inside another program (a test host)", refused.Message, StringComparison.Ordinal);
        Assert.Single(manager.GetWorkers()); // nothing changed
    }

    public void Dispose()
    {
        foreach (var pid in _successors)
        {
            TestProcesses.KillTree(pid);
        }

        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>The pid of the new primary the log names (the <paramref name="skip"/>+1-th upgrade); remembered, to be killed.</summary>
    private async Task<int> SuccessorAsync(AppProcess app, int skip = 0)
    {
        var pid = 0;
        await Wait.UntilAsync(() =>
        {
            var match = StartedPattern().Matches(app.Output).Skip(skip).FirstOrDefault();
            pid = match is null ? 0 : int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            return pid > 0;
        }, TimeSpan.FromSeconds(30), "the log names the new primary");
        _successors.Add(pid);
        return pid;
    }

    /// <summary>The primary's pendingConnections, from its status on the admin socket (its workers may be stalled).</summary>
    private int PendingConnections(int primary)
    {
        var (exitCode, output, _) = ClusterTool.RunAsync(_directory, "status", "--json", primary.ToString(CultureInfo.InvariantCulture))
            .GetAwaiter().GetResult();
        using var status = System.Text.Json.JsonDocument.Parse(exitCode == 0 ? output : "{}");
        return status.RootElement.TryGetProperty("primary", out var p) ? p.GetProperty("pendingConnections").GetInt32() : -1;
    }

    /// <summary>The worker pids that answer 20 requests on new connections.</summary>
    private static async Task<int[]> ServedByAsync(System.Net.EndPoint endpoint) =>
        [.. (await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint))))
            .Select(HttpProbe.ServedBy).Distinct()];

    [GeneratedRegex(@"Primary upgrade: new primary started \(pid (\d+)\)")]
    private static partial Regex StartedPattern();

    [GeneratedRegex("Starting 2 workers: ")]
    private static partial Regex StartingWorkersPattern();
}
