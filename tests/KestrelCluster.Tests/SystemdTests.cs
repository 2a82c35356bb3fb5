// systemd, from outside: socket activation with clustering on (systemd-socket-activate hands the sample a listening
// socket; the primary accepts on it and two workers serve, and only the primary holds it), and Type=notify as a
// service manager sees it (a NOTIFY_SOCKET datagram listener: READY=1 once both workers are ready, RELOADING=1 …
// READY=1 around a rolling restart, STOPPING=1 on SIGTERM).
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class SystemdTests
{
    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task SocketActivation_PrimaryStopped_TheSocketListensOnInTheManager_AndAConnectionMadeMeanwhileIsServedByTheNextStart()
    {
        var port = FreePort.Tcp();
        string[] environment = ["-E", "Cluster__Workers=2", "-E", "Kestrel__Endpoints__Http__Url=http://127.0.0.1:0",
            "-E", "Kestrel__Endpoints__H2c__Url=http://127.0.0.1:0", "-E", "DOTNET_hostBuilder__reloadConfigOnChange=false"];

        // A stand-in for systemd's own process: it keeps the activated socket (fd 3), as systemd does, and starts the service
        // on it twice — `systemctl restart` — each time with LISTEN_PID naming the service's own pid.
        var directory = Directory.CreateTempSubdirectory("kc-manager-").FullName;
        var manager = Path.Combine(directory, "service-manager");
        await File.WriteAllTextAsync(manager, """
            #!/bin/sh
            start() {
              sh -c 'LISTEN_PID=$$ exec "$@"' sh "$@" &
              child=$!
              echo "service-manager: started $child"
              wait $child
              echo "service-manager: $child exited"
            }
            start "$@"
            start "$@"
            """.Replace("\r", "", StringComparison.Ordinal));
        File.SetUnixFileMode(manager, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            using var app = AppProcess.StartWrapped(["systemd-socket-activate", "-l", $"127.0.0.1:{port}", .. environment, manager],
                AppProcess.Sample, new Dictionary<string, string?>());
            await app.WaitForOutputAsync($"Listening on 127.0.0.1:{port}", TimeSpan.FromSeconds(20));
            var endpoint = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port);
            var first = HttpProbe.NewConnectionRequestAsync(endpoint); // activates the service
            await app.WaitUntilServingAsync(workers: 2);
            Assert.StartsWith("HTTP/1.1 200", await first, StringComparison.Ordinal);
            var primary = StartedPid(app.Output);
            var firstWorkers = ProcFs.ChildrenOf(primary);
            var socket = Assert.Single(ProcFs.ListeningTcpInodes(port));

            // The primary stops (SIGTERM, as systemctl stop sends it): it closes its copy of the socket, never the socket.
            TestProcesses.Signal(primary, TestProcesses.SIGTERM);
            await app.WaitForOutputAsync($"service-manager: {primary} exited", TimeSpan.FromSeconds(60));
            Assert.Equal([socket], ProcFs.ListeningTcpInodes(port)); // still listening, in the manager

            // A client connects while no primary runs: it waits in the backlog and the next start serves it.
            var meanwhile = await HttpProbe.NewConnectionRequestAsync(endpoint);
            Assert.StartsWith("HTTP/1.1 200", meanwhile, StringComparison.Ordinal);
            Assert.DoesNotContain(HttpProbe.ServedBy(meanwhile), firstWorkers);
            Assert.NotEqual(primary, StartedPid(app.Output));
            Assert.Equal([socket], ProcFs.ListeningTcpInodes(port));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The pid the stand-in manager last said it started.</summary>
    private static int StartedPid(string output) => int.Parse(output.Split('\n')
        .Last(l => l.StartsWith("service-manager: started ", StringComparison.Ordinal))["service-manager: started ".Length..],
        System.Globalization.CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("RoundRobin")]
    [InlineData("ReusePort")] // one activated socket cannot be one per worker: the primary accepts on it and says so
    public async Task SocketActivation_TheActivatedSocketIsServedByTwoWorkers_AndOnlyThePrimaryHoldsIt(string scheduling)
    {
        var port = FreePort.Tcp();
        string[] environment = ["-E", "Cluster__Workers=2", "-E", $"Cluster__Scheduling={scheduling}",
            "-E", "Kestrel__Endpoints__Http__Url=http://127.0.0.1:0",
            "-E", "Kestrel__Endpoints__H2c__Url=http://127.0.0.1:0", "-E", "DOTNET_hostBuilder__reloadConfigOnChange=false"];

        // systemd-socket-activate binds the port and, at the first connection, execs the app with LISTEN_FDS=1 (fd 3) and
        // LISTEN_PID: the sample's Kestrel UseSystemd() takes it, as under a real .socket unit.
        using var app = AppProcess.StartWrapped(["systemd-socket-activate", "-l", $"127.0.0.1:{port}", .. environment],
            AppProcess.Sample, new Dictionary<string, string?>());
        await app.WaitForOutputAsync($"Listening on 127.0.0.1:{port}", TimeSpan.FromSeconds(20));
        var endpoint = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port);
        var first = HttpProbe.NewConnectionRequestAsync(endpoint); // activates the service, and waits in the backlog meanwhile
        await app.WaitForOutputAsync($"Now listening on: http://127.0.0.1:{port}", TimeSpan.FromSeconds(60));
        await app.WaitUntilServingAsync(workers: 2);
        var workers = app.Workers();
        Assert.Equal(2, workers.Count);

        var servedBy = new HashSet<int> { HttpProbe.ServedBy(await first) };
        for (var i = 0; i < 6; i++)
        {
            servedBy.Add(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)));
        }

        Assert.Equal(workers.ToHashSet(), servedBy);
        var listening = Assert.Single(ProcFs.ListeningTcpInodes(port));
        Assert.Contains(listening, ProcFs.SocketInodes(app.ProcessId));
        Assert.All(workers, pid => Assert.DoesNotContain(listening, ProcFs.SocketInodes(pid)));
        await app.WaitForOutputAsync($"pid {workers[0]}) is serving http://127.0.0.1:{port}", TimeSpan.FromSeconds(10));
        Assert.Equal(scheduling == "ReusePort", app.Output.Contains("cannot have a socket per worker (Scheduling=ReusePort",
            StringComparison.Ordinal));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task UnderSystemd_TheAppsAddSystemdKeepsItsFormat_AndOnlyTheClusterSaysReady()
    {
        // A stand-in for systemd as the parent (Microsoft.Extensions.Hosting.Systemd checks the parent's name): the
        // sample's AddSystemd() then switches to the journald format and its Type=notify lifetime, as under a real unit.
        using var systemd = new StandInParent("systemd");
        using var notify = new NotifyListener(Path.Combine(systemd.Directory, "notify.sock"));
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["NOTIFY_SOCKET"] = notify.Path;

        using var app = AppProcess.StartWrapped([systemd.ScriptPath], AppProcess.Sample, environment);
        await app.WaitUntilServingAsync(workers: 2);
        await Wait.UntilAsync(() => notify.Messages.Any(m => m.Contains("READY=1", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), "READY=1 arrives");

        // One READY=1, the cluster's: the app's systemd lifetime, which would say it when the primary's host starts, is quiet.
        Assert.Equal(["READY=1\nSTATUS=2/2 workers ready"], notify.Messages.Where(m => m.Contains("READY=1", StringComparison.Ordinal)));
        await Wait.UntilAsync(() => app.Output.Split('\n').Count(l => l.StartsWith("<6>[worker ", StringComparison.Ordinal)
            && l.Contains("KestrelCluster.Worker.WorkerReadiness[106] Worker ", StringComparison.Ordinal)) == 2,
            TimeSpan.FromSeconds(10), "both workers' serving lines arrive in the journald format, attributed");
        var lines = app.Output.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("<6>KestrelCluster.Primary[", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("[worker ", StringComparison.Ordinal)); // no worker line lost its priority
    }

    [Fact]
    public async Task Notify_ReadyAfterTheWorkers_ReloadingAroundARollingRestart_StoppingOnSigterm()
    {
        var directory = Directory.CreateTempSubdirectory("kc-notify-").FullName;
        var listener = new NotifyListener(Path.Combine(directory, "notify.sock"));
        var messages = listener.Messages;
        var path = listener.Path;
        try
        {
            var environment = AppProcess.FreePortEnvironment(workers: 2);
            environment["NOTIFY_SOCKET"] = path;
            using var app = AppProcess.Start(environment);
            await app.WaitUntilServingAsync(workers: 2);
            var workers = app.Workers();
            await Wait.UntilAsync(() => messages.Any(m => m.Contains("READY=1", StringComparison.Ordinal)), TimeSpan.FromSeconds(10),
                "READY=1 arrives");

            // Ready only with both workers ready: said in the same datagram, and nothing said ready before.
            var ready = messages.First(m => m.Contains("READY=1", StringComparison.Ordinal));
            Assert.Equal("READY=1\nSTATUS=2/2 workers ready", ready);
            Assert.DoesNotContain(messages.TakeWhile(m => m != ready), m => m.Contains("READY=1", StringComparison.Ordinal));

            // The workers were not given the service's notify socket.
            Assert.All(workers, pid => Assert.DoesNotContain("NOTIFY_SOCKET=",
                File.ReadAllText($"/proc/{pid}/environ"), StringComparison.Ordinal));

            var before = messages.Count;
            TestProcesses.Signal(app.ProcessId, TestProcesses.SIGHUP);
            await Wait.UntilAsync(() => messages.Skip(before).Any(m => m.StartsWith("READY=1", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(60), "READY=1 after the rolling restart");
            var restart = messages.Skip(before).ToList();
            Assert.Matches(@"^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=Rolling restart to generation 1$", restart[0]);
            Assert.Equal("READY=1\nSTATUS=2/2 workers ready", restart.First(m => m.StartsWith("READY=1", StringComparison.Ordinal)));

            TestProcesses.Signal(app.ProcessId, TestProcesses.SIGTERM);
            Assert.True(await app.WaitForExitAsync(TimeSpan.FromSeconds(30)), "the primary stops");
            Assert.Contains("STOPPING=1\nSTATUS=Stopping", messages);
        }
        finally
        {
            listener.Dispose();
            Directory.Delete(directory, recursive: true);
        }
    }
}
