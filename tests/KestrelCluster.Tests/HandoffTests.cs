// The core handoff, end to end: a primary in this process (WebApplicationFactory, real Kestrel) accepts, and
// real worker processes serve every protocol ASP.NET Core speaks over TCP.
using System.Net;
using System.Net.WebSockets;
using System.Text;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class HandoffTests(ClusterFixture cluster)
{
    [Fact]
    public async Task Cluster_WebApplicationFactoryUseKestrel0_ServedByTwoWorkerProcessesNeverTheTestProcess()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "2" }, port: 0);
        await factory.StartAsync(workers: 2);
        var address = Assert.Single(factory.Addresses);
        Assert.NotEqual(0, new Uri(address).Port);

        var servedBy = new HashSet<int>();
        using var client = HttpProbe.CreateClient(keepAlive: false);
        for (var i = 0; i < 20; i++)
        {
            servedBy.Add(HttpProbe.ServedBy(await client.GetStringAsync(address)));
        }

        Assert.True(servedBy.Count >= 2, $"served by {string.Join(", ", servedBy)}");
        Assert.DoesNotContain(Environment.ProcessId, servedBy);
        Assert.Subset(factory.WorkerProcessIds().ToHashSet(), servedBy);
    }

    [Fact]
    public async Task Http11_KeepAlive_ManyRequestsOnOneConnectionServedByOneWorker()
    {
        using var client = HttpProbe.CreateClient(HttpVersion.Version11);
        var servedBy = new HashSet<int>();
        for (var i = 0; i < 10; i++)
        {
            var body = await client.GetStringAsync(cluster.HttpAddress);
            Assert.Contains("HTTP/1.1", body, StringComparison.Ordinal);
            servedBy.Add(HttpProbe.ServedBy(body));
        }

        var pid = Assert.Single(servedBy);
        Assert.Contains(pid, cluster.Factory.WorkerProcessIds());
    }

    [Fact]
    public async Task Http2_PriorKnowledge_ServedByWorker()
    {
        using var client = HttpProbe.CreateClient(HttpVersion.Version20);
        using var response = await client.GetAsync(cluster.H2cAddress);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Contains("serving HTTP/2", body, StringComparison.Ordinal);
        Assert.Contains(HttpProbe.ServedBy(body), cluster.Factory.WorkerProcessIds());
    }

    [Theory]
    [InlineData("1.1", "HTTP/1.1")]
    [InlineData("2.0", "HTTP/2")]
    public async Task Https_TlsWithAlpn_ServedByWorker(string version, string expectedProtocol)
    {
        using var client = HttpProbe.CreateClient(Version.Parse(version));
        var body = await client.GetStringAsync(cluster.HttpsAddress);

        Assert.Contains($"serving {expectedProtocol}", body, StringComparison.Ordinal);
        Assert.Contains(HttpProbe.ServedBy(body), cluster.Factory.WorkerProcessIds());
    }

    [Fact]
    public async Task WebSocket_Echo_ServedByWorker()
    {
        using var socket = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(HttpProbe.Timeout);
        await socket.ConnectAsync(new Uri(cluster.HttpAddress.Replace("http://", "ws://", StringComparison.Ordinal) + "/ws"), timeout.Token);

        await socket.SendAsync(Encoding.UTF8.GetBytes("ping"), WebSocketMessageType.Text, endOfMessage: true, timeout.Token);
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, timeout.Token);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);

        Assert.Matches(@"^worker \d+: ping$", Encoding.UTF8.GetString(buffer, 0, received.Count));
    }

    [Fact]
    public async Task RequestBody_OneMegabyte_EchoedByWorker()
    {
        using var client = HttpProbe.CreateClient();
        var payload = new string('x', 1024 * 1024);
        using var response = await client.PostAsync(cluster.HttpAddress + "/echo", new StringContent(payload));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(payload, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ClientAddress_SeenByWorker_IsTheRealClientEndPoint()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(HttpProbe.EndPointOf(cluster.HttpAddress));
        var local = (IPEndPoint)socket.LocalEndPoint!;
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        using var timeout = new CancellationTokenSource(HttpProbe.Timeout);
        var response = await HttpProbe.ReadToEndAsync(socket, timeout.Token);

        Assert.Contains($"for {local.Address.MapToIPv4()}:{local.Port}", response, StringComparison.Ordinal);
    }

    [Fact]
    public void Listening_OnlyThePrimaryHoldsTheListeningSocket()
    {
        var port = new Uri(cluster.HttpAddress).Port;
        var listening = ProcFs.ListeningTcpInodes(port);
        Assert.NotEmpty(listening);

        Assert.True(ProcFs.SocketInodes(Environment.ProcessId).Overlaps(listening), "the primary (this process) holds the listening socket");
        foreach (var worker in cluster.Factory.WorkerProcessIds())
        {
            Assert.False(ProcFs.SocketInodes(worker).Overlaps(listening), $"worker pid {worker} holds no listening socket");
        }
    }
}
