// What happens when things go wrong: a worker dies holding connections, a stranger or garbage reaches the
// control socket, and many connections pass through without the primary leaking a descriptor.
using System.Net.Sockets;
using KestrelCluster.Protocol;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FaultTests(ClusterFixture cluster)
{
    [Fact]
    public async Task Handoff_WorkerKilledWhileConnectionsQueuedToIt_EveryConnectionIsServed()
    {
        var workers = cluster.Factory.Supervisor.WorkerProcesses;
        var victim = workers[0];
        var endpoint = HttpProbe.EndPointOf(cluster.HttpAddress);

        // A stopped worker reads nothing: connections handed to it queue in its socket, unacknowledged.
        await TestProcesses.StopAsync(victim.ProcessId);
        Task<string>[] requests;
        try
        {
            requests = [.. Enumerable.Range(0, 40).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint))];
            await Wait.UntilAsync(() => victim.Channel!.InFlightCount > 0, TimeSpan.FromSeconds(10), "connections are queued to the stopped worker");
        }
        finally
        {
            TestProcesses.Signal(victim.ProcessId, TestProcesses.SIGKILL);
        }

        var responses = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(responses, r => Assert.StartsWith("HTTP/1.1 200", r, StringComparison.Ordinal));
        Assert.DoesNotContain(responses, r => HttpProbe.ServedBy(r) == victim.ProcessId);

        // The supervisor replaces the killed worker; the shared cluster is whole again for the next test.
        await Wait.UntilAsync(() => cluster.Factory.Supervisor.WorkerProcesses.Count(w => w.IsReady && w.Id != victim.Id) == ClusterFixture.WorkerCount,
            TimeSpan.FromSeconds(30), "a replacement worker is ready");
    }

    [Fact]
    public async Task ControlChannel_ChildThatIsNotTheWorkerItNames_IsRejectedAndThePrimaryKeepsServing()
    {
        // A child of the primary sends a well-formed hello naming a real worker id, with a made-up secret.
        var someWorker = cluster.Factory.Supervisor.WorkerProcesses[0].Id;
        await AssertChildRejectedAsync(ControlFrames.Hello(someWorker, new byte[ControlFrames.SecretLength]), $"it is not the process spawned as worker {someWorker}");
    }

    [Fact]
    public async Task ControlChannel_WorkerOfANewerProtocol_IsRefusedSayingToUpgradeThePrimary_AndThePrimaryKeepsServing()
    {
        // A worker re-launched from a newer build on disk (a deploy, then SIGHUP) while this primary runs the old one.
        var someWorker = cluster.Factory.Supervisor.WorkerProcesses[0].Id;
        var newer = ControlProtocol.Version + 1;
        await AssertChildRejectedAsync(ControlFrames.Hello(someWorker, new byte[ControlFrames.SecretLength], newer),
            ControlProtocol.WorkerMismatch(newer));
        Assert.Contains("Upgrade the primary", ControlProtocol.WorkerMismatch(newer), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ControlChannel_ChildSendingGarbageInsteadOfHello_IsRejectedAndThePrimaryKeepsServing() =>
        await AssertChildRejectedAsync([0xFF, 1, 2, 3, 4, 5], "its first frame is not a valid hello");

    [Fact]
    public async Task ControlChannel_ManySilentStrangers_AreHungUpOnAtOnce_NotAfterTheHelloTimeout()
    {
        // Connections from a process the primary did not start cost no thread waiting 10 s for a hello.
        var path = cluster.Factory.Supervisor.ControlSocketPath!;
        var strangers = new List<Socket>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var stranger = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
                strangers.Add(stranger);
                await stranger.ConnectAsync(new UnixDomainSocketEndPoint(path));
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var received = await Task.WhenAll(strangers.Select(s => s.ReceiveAsync(new byte[64], SocketFlags.None, timeout.Token).AsTask()));
            Assert.All(received, r => Assert.Equal(0, r)); // every one hung up on, well before the hello timeout
        }
        finally
        {
            strangers.ForEach(s => s.Dispose());
        }

        Assert.Contains(cluster.Factory.Logs.Entries, e => e.Message == $"Rejected a control-channel connection from pid {Environment.ProcessId}: it is not a process this primary started.");

        using var client = HttpProbe.CreateClient(keepAlive: false);
        Assert.Contains(HttpProbe.ServedBy(await client.GetStringAsync(cluster.HttpAddress)), cluster.Factory.WorkerProcessIds());
    }

    [Fact]
    public async Task Handoff_TenThousandConnections_PrimaryFdCountDoesNotGrow()
    {
        var endpoint = HttpProbe.EndPointOf(cluster.HttpAddress);
        await HttpProbe.NewConnectionRequestAsync(endpoint); // warm up
        var before = ProcFs.CountFds(Environment.ProcessId);

        const int total = 10_000;
        var next = 0;
        var failures = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= total)
            {
                var response = await HttpProbe.NewConnectionRequestAsync(endpoint);
                if (!response.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref failures);
                }
            }
        })).WaitAsync(TimeSpan.FromMinutes(3));

        Assert.Equal(0, failures);

        // Every handed-off copy is closed once acknowledged; allow a little slack for unrelated runtime fds.
        await Wait.UntilAsync(() => ProcFs.CountFds(Environment.ProcessId) <= before + 5, TimeSpan.FromSeconds(10),
            $"the primary's fd count returns to about {before} (now {ProcFs.CountFds(Environment.ProcessId)})");
    }

    /// <summary>Starts a child of the primary (this process) that sends <paramref name="frame"/> on the control socket.</summary>
    private async Task AssertChildRejectedAsync(byte[] frame, string reason)
    {
        using var child = AppProcess.Start(AppProcess.TestApp, new Dictionary<string, string?>(),
            "--stranger", cluster.Factory.Supervisor.ControlSocketPath!, Convert.ToHexString(frame));
        Assert.True(await child.WaitForExitAsync(TimeSpan.FromSeconds(30)), "the child exits");

        Assert.Equal(0, child.Process.ExitCode);
        Assert.Contains("hung up", child.Output, StringComparison.Ordinal);
        Assert.Contains(cluster.Factory.Logs.Entries, e => e.Message == $"Rejected a control-channel connection from pid {child.ProcessId}: {reason}.");

        using var client = HttpProbe.CreateClient(keepAlive: false);
        Assert.Contains(HttpProbe.ServedBy(await client.GetStringAsync(cluster.HttpAddress)), cluster.Factory.WorkerProcessIds());
    }
}
