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
        TestProcesses.Signal(victim.ProcessId, TestProcesses.SIGSTOP);
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
    public async Task ControlChannel_ProcessThatIsNotAWorker_IsRejectedAndThePrimaryKeepsServing()
    {
        var path = cluster.Factory.Supervisor.ControlSocketPath!;
        using var stranger = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await stranger.ConnectAsync(new UnixDomainSocketEndPoint(path));

        // A well-formed hello naming a real worker id, from the wrong process and with a made-up secret.
        var someWorker = cluster.Factory.Supervisor.WorkerProcesses[0].Id;
        await stranger.SendAsync(ControlFrames.Hello(someWorker, new byte[ControlFrames.SecretLength]));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = await stranger.ReceiveAsync(new byte[64], SocketFlags.None, timeout.Token);
        Assert.Equal(0, received); // the primary hung up

        using var client = HttpProbe.CreateClient(keepAlive: false);
        Assert.Contains(HttpProbe.ServedBy(await client.GetStringAsync(cluster.HttpAddress)), cluster.Factory.WorkerProcessIds());
    }

    [Fact]
    public async Task ControlChannel_GarbageInsteadOfHello_IsDroppedAndThePrimaryKeepsServing()
    {
        var path = cluster.Factory.Supervisor.ControlSocketPath!;
        using var stranger = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await stranger.ConnectAsync(new UnixDomainSocketEndPoint(path));
        await stranger.SendAsync(new byte[] { 0xFF, 1, 2, 3, 4, 5 });

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(0, await stranger.ReceiveAsync(new byte[64], SocketFlags.None, timeout.Token));

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
}
