// Every endpoint kind Kestrel binds over TCP or Unix sockets is bound by the primary and served by workers:
// dual-mode IPv6Any, localhost (two binds), port 0, a Unix domain socket; and the app's own
// SocketTransportOptions.CreateBoundListenSocket, which Kestrel honours, is honoured by the primary too.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class EndpointTests
{
    [Fact]
    public async Task Endpoints_DualModeLocalhostAndUnixSocket_AllServedByWorkers()
    {
        var directory = Directory.CreateTempSubdirectory("kc-endpoints-").FullName;
        var unixPath = Path.Combine(directory, "app.sock");
        var localhostPort = FreePort.Tcp();
        try
        {
            await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
            {
                ["Cluster__Workers"] = "2",
                ["Kestrel__Endpoints__Http__Url"] = "http://[::]:0",
                ["Kestrel__Endpoints__H2c__Url"] = $"http://unix:{unixPath}",
                ["Kestrel__Endpoints__H2c__Protocols"] = "Http1AndHttp2",
                ["Kestrel__Endpoints__Local__Url"] = $"http://localhost:{localhostPort}",
            });
            await factory.StartAsync(workers: 2);
            var workers = factory.WorkerProcessIds();
            var dualPort = new Uri(factory.Addresses.Single(a => a.Contains("[::]", StringComparison.Ordinal))).Port;

            var targets = new (string Name, EndPoint EndPoint)[]
            {
                ("dual mode over IPv4", new IPEndPoint(IPAddress.Loopback, dualPort)),
                ("dual mode over IPv6", new IPEndPoint(IPAddress.IPv6Loopback, dualPort)),
                ("localhost over IPv4", new IPEndPoint(IPAddress.Loopback, localhostPort)),
                ("localhost over IPv6", new IPEndPoint(IPAddress.IPv6Loopback, localhostPort)),
                ("Unix domain socket", new UnixDomainSocketEndPoint(unixPath)),
            };

            foreach (var (name, endpoint) in targets)
            {
                var response = await HttpProbe.NewConnectionRequestAsync(endpoint);
                Assert.True(response.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), $"{name}: {response}");
                Assert.Contains(HttpProbe.ServedBy(response), workers);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task CreateBoundListenSocket_SetByTheApp_ThePrimaryBindsWithIt()
    {
        var bound = new System.Collections.Concurrent.ConcurrentQueue<EndPoint>();
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "1" }, port: 0,
            configureServices: services => services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(options =>
                options.CreateBoundListenSocket = endpoint =>
                {
                    bound.Enqueue(endpoint);
                    return Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
                }));
        await factory.StartAsync(workers: 1);

        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));
        Assert.Contains(bound, e => e is IPEndPoint ip && IPAddress.IsLoopback(ip.Address));
        var response = await HttpProbe.NewConnectionRequestAsync(endpoint);
        Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
        Assert.Contains(HttpProbe.ServedBy(response), factory.WorkerProcessIds());
    }
}
