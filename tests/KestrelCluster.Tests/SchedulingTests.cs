// Each scheduling policy, measured from outside: which worker served which connection.
using System.Net;
using System.Net.WebSockets;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class SchedulingTests(ClusterFixture cluster)
{
    [Fact]
    public async Task RoundRobin_ThousandConnections_EachWorkerGetsAnEqualShareWithinOne()
    {
        var endpoint = HttpProbe.EndPointOf(cluster.HttpAddress);
        var counts = new Dictionary<int, int>();
        for (var i = 0; i < 1000; i++)
        {
            var pid = HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint));
            counts[pid] = counts.GetValueOrDefault(pid) + 1;
        }

        Assert.Equal(ClusterFixture.WorkerCount, counts.Count);
        Assert.True(counts.Values.Max() - counts.Values.Min() <= 1, string.Join(", ", counts.Select(c => $"pid {c.Key}: {c.Value}")));
    }

    [Fact]
    public async Task LeastConnections_OneWorkerHolds50LongLivedConnections_NewConnectionsGoToTheOther()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "1",
            ["Cluster__Scheduling"] = "LeastConnections",
        }, port: 0);
        await factory.StartAsync(workers: 1);
        var address = Assert.Single(factory.Addresses);
        var busy = factory.Supervisor.WorkerProcesses.Single();
        var sockets = new List<ClientWebSocket>();
        try
        {
            // 50 WebSockets, all on the only worker, open for the whole test.
            for (var i = 0; i < 50; i++)
            {
                var socket = new ClientWebSocket();
                sockets.Add(socket);
                await socket.ConnectAsync(new Uri(address.Replace("http://", "ws://", StringComparison.Ordinal) + "/ws"), CancellationToken.None).WaitAsync(HttpProbe.Timeout);
            }

            await factory.Services.GetRequiredService<IClusterManager>().ScaleAsync(2).WaitAsync(TimeSpan.FromSeconds(60));
            var idle = factory.Supervisor.WorkerProcesses.Single(w => w.Id != busy.Id);

            var servedBy = new List<int>();
            for (var i = 0; i < 20; i++)
            {
                servedBy.Add(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(HttpProbe.EndPointOf(address))));
            }

            Assert.All(servedBy, pid => Assert.Equal(idle.ProcessId, pid));
            Assert.All(sockets, s => Assert.Equal(WebSocketState.Open, s.State));
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Abort();
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task ClientIpHash_SameClientAddress_SameWorkerAndScalingDownMovesOnlyTheRemovedSlotsClients()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "3",
            ["Cluster__Scheduling"] = "ClientIpHash",
        }, port: 0);
        await factory.StartAsync(workers: 3);
        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));
        var clients = Enumerable.Range(2, 30).Select(i => IPAddress.Parse($"127.0.0.{i}")).ToList();
        int SlotOf(int pid) => factory.Supervisor.WorkerProcesses.Single(w => w.ProcessId == pid).Slot;

        var before = new Dictionary<IPAddress, int>();
        foreach (var client in clients)
        {
            var pids = new HashSet<int>();
            for (var i = 0; i < 3; i++)
            {
                pids.Add(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint, from: client)));
            }

            before[client] = Assert.Single(pids); // sticky
        }

        var slotsBefore = before.ToDictionary(c => c.Key, c => SlotOf(c.Value));
        Assert.True(slotsBefore.Values.Distinct().Count() >= 2, "clients spread over several workers");

        await factory.Services.GetRequiredService<IClusterManager>().ScaleAsync(2).WaitAsync(TimeSpan.FromSeconds(60));

        foreach (var client in clients)
        {
            var pid = HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint, from: client));
            if (slotsBefore[client] != 2)
            {
                Assert.Equal(before[client], pid); // its worker is still there: it stays
            }
        }
    }

    [Fact]
    public async Task Shared_WorkersAcceptOnTheListeningSocketItself()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "2",
            ["Cluster__Scheduling"] = "Shared",
        }, port: 0);
        await factory.StartAsync(workers: 2);
        var address = Assert.Single(factory.Addresses);
        var workers = factory.WorkerProcessIds();

        for (var i = 0; i < 20; i++)
        {
            Assert.Contains(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(HttpProbe.EndPointOf(address))), workers);
        }

        var listening = ProcFs.ListeningTcpInodes(new Uri(address).Port);
        Assert.All(workers, pid => Assert.True(ProcFs.SocketInodes(pid).Overlaps(listening), $"worker {pid} holds the listening socket"));
    }

    [Fact]
    public async Task CustomScheduler_RegisteredInDI_IsUsed()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "2" }, port: 0,
            configureServices: services => services.AddSingleton<IConnectionScheduler, LastSlotScheduler>());
        await factory.StartAsync(workers: 2);
        var lastSlot = factory.Supervisor.WorkerProcesses.Single(w => w.Slot == 1);

        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(lastSlot.ProcessId, HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(HttpProbe.EndPointOf(Assert.Single(factory.Addresses)))));
        }
    }


    [Fact]
    public void Schedulers_CanBeDrivenWithTheirPublicValues_AsAnAppsUnitTestWould()
    {
        var connection = new ScheduledConnection(new IPEndPoint(IPAddress.Loopback, 8080), new IPEndPoint(IPAddress.Parse("10.0.0.7"), 50000));
        ReadOnlySpan<WorkerCandidate> candidates = [new(workerId: 4, slotIndex: 0, handoffsInFlight: 0, openConnections: 7),
            new(workerId: 5, slotIndex: 1, handoffsInFlight: 2, openConnections: 1), new(workerId: 6, slotIndex: 2, handoffsInFlight: 0, openConnections: 9)];

        // Least connections counts open plus in flight: worker 5 carries 3, the others 7 and 9.
        Assert.Equal(1, KestrelCluster.Hosting.ClusterOptionsBinder.CreateScheduler(SchedulingPolicy.LeastConnections).Choose(connection, candidates));

        // Client-IP hash: the same client, the same candidate, call after call.
        var hash = KestrelCluster.Hosting.ClusterOptionsBinder.CreateScheduler(SchedulingPolicy.ClientIpHash);
        var first = hash.Choose(connection, candidates);
        Assert.InRange(first, 0, 2);
        Assert.Equal(first, hash.Choose(connection, candidates));
        Assert.Equal(IPAddress.Parse("10.0.0.7"), ((IPEndPoint)connection.RemoteEndPoint!).Address);
        Assert.Equal(2, new LastSlotScheduler().Choose(connection, candidates));
    }

    /// <summary>Sends everything to the highest slot.</summary>
    private sealed class LastSlotScheduler : IConnectionScheduler
    {
        public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates) => candidates.Length - 1;
    }
}
