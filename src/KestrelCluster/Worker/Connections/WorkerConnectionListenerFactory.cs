// Kestrel's transport in a worker: "binding" registers the endpoint with the primary and returns a listener
// fed by the control channel. Nothing is bound in a worker.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable
{
    private readonly WorkerControlChannel _channel;
    private readonly SocketConnectionContextFactory _contextFactory;
    private readonly ILogger _logger;
    private readonly WorkerMetrics _metrics;

    public WorkerConnectionListenerFactory(WorkerControlChannel channel, WorkerIdentity identity,
        IOptions<SocketTransportOptions> socketOptions, WorkerMetrics metrics, ILoggerFactory loggerFactory)
    {
        _metrics = metrics;
        _channel = channel;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Worker");
        var options = WorkerSocketOptions.Create(socketOptions.Value, identity.WorkerCount, _logger);
        if (RuntimeInternals.DisabledByApp)
        {
            WorkerLog.RuntimeInternalsDisabled(_logger, RuntimeInternals.DisableSwitch, RuntimeInternals.DisableVariable);
        }
        else if (!HandedOffSocket.CanSkipKernelQueries)
        {
            WorkerLog.NoAcceptPathSocket(_logger);
        }

        _contextFactory = new SocketConnectionContextFactory(options,
            loggerFactory.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));
    }

    /// <summary>A FileHandleEndPoint is a socket-activated listener of the primary's (see SocketActivation): never opened here.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint or FileHandleEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var (listenerId, bound, sharedFd) = await _channel.RegisterAsync(endpoint, cancellationToken).ConfigureAwait(false);
        var handoffs = new WorkerConnectionListener(listenerId, bound, _channel, _contextFactory, _metrics, _logger);
        _channel.AddListener(handoffs);
        return sharedFd >= 0 ? new SharedConnectionListener(sharedFd, bound, _contextFactory, _channel, handoffs) : handoffs;
    }

    public void Dispose() => _contextFactory.Dispose();
}
