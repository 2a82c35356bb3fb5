// Scheduling=ReusePort, from outside with real processes: a listening socket per worker slot that the worker accepts on
// itself, the kernel's spread, and the primary as the safety net for what is queued on the socket of a slot with no
// worker serving it (a worker killed, a rolling restart, a scale-down).
using System.Net;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ReusePortTests
{
    private static ClusterAppFactory ReusePortCluster(int workers = 2) => new(new Dictionary<string, string?>
    {
        ["Cluster__Workers"] = workers.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Cluster__Scheduling"] = "ReusePort",
    }, port: 0);

    [Fact]
    public async Task ReusePort_EachWorkerAcceptsOnASocketOfItsOwn_AndTheKernelSpreadsNewConnectionsEvenly()
    {
        await using var factory = ReusePortCluster();
        await factory.StartAsync(workers: 2);
        var address = Assert.Single(factory.Addresses);
        var endpoint = HttpProbe.EndPointOf(address);
        var workers = factory.WorkerProcessIds();

        // Two listening sockets on the port, one in each worker (and both in the primary).
        var listening = ProcFs.ListeningTcpInodes(endpoint.Port);
        Assert.Equal(2, listening.Count);
        var held = workers.Select(pid => Assert.Single(ProcFs.SocketInodes(pid).Intersect(listening))).ToList();
        Assert.NotEqual(held[0], held[1]);

        var counts = new Dictionary<int, int>();
        for (var i = 0; i < 1000; i++)
        {
            var pid = HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint));
            counts[pid] = counts.GetValueOrDefault(pid) + 1;
        }

        // The kernel hashes each client's address and port: over 1,000 connections each of 2 workers gets 40-60 % (a fair coin
        // leaves that range once in ~10^10 runs).
        Assert.Equal(workers.Order(), counts.Keys.Order());
        Assert.All(counts.Values, c => Assert.InRange(c, 400, 600));

        // No connection went through the primary: the workers accepted every one.
        Assert.True(factory.Services.GetRequiredService<HandoffDispatcher>().Accepted <= 10,
            $"the primary accepted {factory.Services.GetRequiredService<HandoffDispatcher>().Accepted} of 1000");
    }

    [Fact]
    public async Task ReusePort_AWorkerKilledWithConnectionsQueuedOnItsSocket_EveryOneOfThemIsAnswered()
    {
        await using var factory = ReusePortCluster();
        await factory.StartAsync(workers: 2);
        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));
        var victim = factory.Supervisor.WorkerProcesses.Single(w => w.Slot == 0);
        var survivor = factory.Supervisor.WorkerProcesses.Single(w => w.Slot == 1);
        var victimSocket = Assert.Single(ProcFs.SocketInodes(victim.ProcessId).Intersect(ProcFs.ListeningTcpInodes(endpoint.Port)));

        // Stopped, the victim accepts nothing: what the kernel puts on its socket waits in the socket's queue.
        await TestProcesses.StopAsync(victim.ProcessId);
        try
        {
            var requests = Enumerable.Range(0, 40).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint)).ToList();
            await Wait.UntilAsync(() => ProcFs.AcceptQueue(victimSocket) >= 5 || requests.Count(r => !r.IsCompleted) >= 5,
                TimeSpan.FromSeconds(30), "connections queued on the stopped worker's socket");
            await Wait.UntilAsync(() => requests.Count(r => r.IsCompleted) + ProcFs.AcceptQueue(victimSocket) >= 40,
                TimeSpan.FromSeconds(30), "every connection answered or queued");
            var queued = ProcFs.AcceptQueue(victimSocket);
            Assert.True(queued > 0, "no connection was queued on the stopped worker's socket");

            TestProcesses.Signal(victim.ProcessId, TestProcesses.SIGKILL);
            var answers = await Task.WhenAll(requests).WaitAsync(HttpProbe.Timeout);

            // Every one answered, none by the victim: the primary took over its socket and handed them on.
            Assert.All(answers, a => Assert.StartsWith("HTTP/1.1 200", a, StringComparison.Ordinal));
            Assert.DoesNotContain(victim.ProcessId, answers.Select(HttpProbe.ServedBy));
            Assert.True(factory.Services.GetRequiredService<HandoffDispatcher>().Accepted >= queued,
                $"the primary accepted {factory.Services.GetRequiredService<HandoffDispatcher>().Accepted}, {queued} were queued");
            Assert.Contains(survivor.ProcessId, answers.Select(HttpProbe.ServedBy));
        }
        finally
        {
            TestProcesses.KillIfAlive(victim.ProcessId);
        }
    }

    [Fact]
    public async Task ReusePort_RollingRestartAndScaleDownUnderLoad_NoRequestFails()
    {
        await using var factory = ReusePortCluster(workers: 3);
        await factory.StartAsync(workers: 3);
        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));
        var manager = factory.Services.GetRequiredService<IClusterManager>();
        var before = manager.GetWorkers();

        var load = LoadLoop.Start(endpoint);
        await load.WaitForMoreAsync(50);
        await manager.RestartWorkersAsync().WaitAsync(TimeSpan.FromSeconds(90));
        await load.WaitForMoreAsync(50);

        // Slot 2's socket stays in the port's group after the scale-down: the primary accepts what the kernel puts there.
        await manager.ScaleAsync(2).WaitAsync(TimeSpan.FromSeconds(60));
        await load.WaitForMoreAsync(100);
        await load.StopAsync();

        Assert.Empty(load.Failures);
        var after = manager.GetWorkers();
        Assert.Equal([0, 1], after.Select(w => w.SlotIndex).Order());
        Assert.Empty(after.Select(w => w.Id).Intersect(before.Select(w => w.Id)));
        Assert.Equal(3, ProcFs.ListeningTcpInodes(endpoint.Port).Count);
        Assert.True(factory.Services.GetRequiredService<HandoffDispatcher>().Accepted > 0, "the primary never accepted on slot 2's socket");
    }

    [Fact]
    public async Task ReusePort_APortAnotherProcessListensOn_FailsAsKestrelDoes_InsteadOfSharingIt()
    {
        using var taken = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream,
            System.Net.Sockets.ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var port = ((IPEndPoint)taken.LocalEndPoint!).Port;

        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "2",
            ["Cluster__Scheduling"] = "ReusePort",
        }, port: port);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => factory.StartAsync(workers: 2));
        Assert.Contains("address already in use", error.ToString(), StringComparison.OrdinalIgnoreCase);
    }
}
