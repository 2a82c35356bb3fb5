// Kestrel's transport in the primary: binds real listening sockets for TCP and Unix domain socket endpoints.
// Kestrel takes the last registered factory whose CanBind is true, so this one wins over the sockets transport
// for the endpoint types it claims; when clustering is off (Workers = 0, or no fd passing) it claims nothing
// and Kestrel's own sockets transport serves as usual.
using System.Net;
using KestrelCluster.Interop;
using System.Net.Sockets;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Upgrade;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Primary;

internal sealed class PrimaryConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly ClusterContext _context;
    private readonly PrimaryListenerTable _table;
    private readonly HandoffDispatcher _dispatcher;
    private readonly SocketTransportOptions _socketOptions;
    private readonly bool _shared;
    private readonly int _reusePortSlots; // Scheduling=ReusePort: the workers configured (slots added later get their socket then)
    private readonly int _acceptThreads;
    private readonly ILogger _logger;
    private readonly PrimaryTakeover? _takeover;

    public PrimaryConnectionListenerFactory(ClusterContext context, PrimaryListenerTable table, HandoffDispatcher dispatcher,
        IOptions<SocketTransportOptions> socketOptions, IOptions<ClusterOptions> clusterOptions, ILoggerFactory loggerFactory,
        PrimaryTakeover? takeover = null)
    {
        _takeover = takeover;
        _shared = clusterOptions.Value.Scheduling == SchedulingPolicy.Shared;
        _reusePortSlots = clusterOptions.Value.Scheduling == SchedulingPolicy.ReusePort ? Math.Max(1, clusterOptions.Value.Workers) : 0;
        _acceptThreads = clusterOptions.Value.AcceptThreads;
        _context = context;
        _table = table;
        _dispatcher = dispatcher;
        _socketOptions = socketOptions.Value;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Primary");
    }

    public bool CanBind(EndPoint endpoint)
    {
        if (_context.Role != ClusterRole.Primary)
        {
            return false;
        }

        // A systemd-activated socket (FileHandleEndPoint) too: the primary accepts on it and hands connections off.
        if (endpoint is IPEndPoint or UnixDomainSocketEndPoint or FileHandleEndPoint)
        {
            return true;
        }

        // Anything else: Kestrel's sockets transport takes it.
        PrimaryLog.EndpointServedByPrimary(_logger, endpoint, endpoint.GetType().Name);
        return false;
    }

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);

        // Taking over from a running primary (an upgrade): its listening socket for this endpoint, if it has one.
        var taken = _takeover?.Take(endpoint);
        if (_takeover is not null && taken is null && endpoint is FileHandleEndPoint activated)
        {
            throw new InvalidOperationException($"File handle {activated.FileHandle} was socket-activated for the primary this one " +
                $"takes over from (pid {_takeover.FromProcessId}), which does not listen on it.");
        }

        var reusePort = _reusePortSlots > 0 && endpoint is IPEndPoint;
        if (_reusePortSlots > 0 && !reusePort)
        {
            PrimaryLog.EndpointNotReusePort(_logger, endpoint);
        }

        // Taken over in ReusePort scheduling, an endpoint comes as the old primary's socket per slot (SO_REUSEPORT set on each).
        var takenGroup = taken is { Sockets: [var first, ..] } && Libc.HasReusePort(first);
        if (taken is { } t && takenGroup != reusePort)
        {
            Array.ForEach(t.Sockets, socket => socket.Dispose());
            throw new InvalidOperationException($"The primary this one takes over from (pid {_takeover!.FromProcessId}) " +
                (takenGroup ? "has a listening socket per worker" : "has one listening socket") + $" for {endpoint}, and this one " +
                (reusePort ? "would have one per worker" : "would have one") + ": an upgrade cannot turn Cluster:Scheduling=ReusePort " +
                "on or off. Restart the cluster to change it.");
        }

        var listener = PrimaryConnectionListener.Bind(_table.NextId(), endpoint, _socketOptions.Backlog, _dispatcher, _table,
            _logger, _shared,
            _socketOptions.NoDelay, _socketOptions.CreateBoundListenSocket, _acceptThreads,
            takenOver: takenGroup ? null : taken?.Sockets[0], startAccepting: _takeover is null,
            reusePortSlots: reusePort ? _reusePortSlots : 0, takenGroup: takenGroup ? taken!.Value.Sockets : null);
        _takeover?.Hold(listener, taken?.PreviousId);
        _table.Add(listener);
        return ValueTask.FromResult<IConnectionListener>(listener);
    }
}
