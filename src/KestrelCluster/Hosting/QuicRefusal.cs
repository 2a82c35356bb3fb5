// HTTP/3 runs over QUIC (UDP): there is no per-connection socket to hand to a worker. In cluster mode this
// factory claims HTTP/3 endpoints only to fail startup with a message that says so, instead of a confusing
// half-working setup.
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace KestrelCluster.Hosting;

internal sealed class QuicRefusal(ClusterContext context) : IMultiplexedConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => context.Role != ClusterRole.Standalone;

    public ValueTask<IMultiplexedConnectionListener> BindAsync(EndPoint endpoint, IFeatureCollection? features = null,
        CancellationToken cancellationToken = default) =>
        throw new NotSupportedException(
            $"HTTP/3 is configured on {endpoint}, but KestrelCluster cannot serve HTTP/3: QUIC runs over UDP and has no " +
                $"per-connection socket to hand to a worker. " +
            "Use HttpProtocols.Http1AndHttp2 on this endpoint, or set Cluster:Workers to 0 to serve HTTP/3 in a single process.");
}
