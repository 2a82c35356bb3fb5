// The worker's listener for one endpoint: binds nothing (Node's listen() stub). The control channel's receive
// loop queues the sockets the primary hands over; AcceptAsync turns each into a Kestrel ConnectionContext and
// only then acknowledges it, so the primary keeps its copy until Kestrel here really owns the connection.
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerConnectionListener : IConnectionListener
{
    private readonly Channel<Queued> _queue = Channel.CreateUnbounded<Queued>(new UnboundedChannelOptions
    {
        // The primary's per-worker in-flight limit bounds this queue: nothing here is acknowledged yet.
        SingleWriter = true,
        SingleReader = false,
    });

    private readonly WorkerControlChannel _channel;
    private readonly SocketConnectionContextFactory _contextFactory;
    private readonly ILogger _logger;
    private readonly WorkerMetrics _metrics;

    public WorkerConnectionListener(int listenerId, EndPoint boundEndPoint, WorkerControlChannel channel,
        SocketConnectionContextFactory contextFactory, WorkerMetrics metrics, ILogger logger)
    {
        _metrics = metrics;
        ListenerId = listenerId;
        EndPoint = boundEndPoint;
        _channel = channel;
        _contextFactory = contextFactory;
        _logger = logger;
    }

    public int ListenerId { get; }

    /// <summary>The primary's real bound endpoint, so "Now listening on" and IServerAddressesFeature are true.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>Called by the receive loop; false when this listener is unbound (the caller refuses the socket).</summary>
    public bool TryEnqueue(int fd, in HandoffEntry entry)
    {
        if (!_queue.Writer.TryWrite(new Queued(fd, entry)))
        {
            return false;
        }

        SocketQueued?.Invoke();
        return true;
    }

    /// <summary>
    /// A connection the worker made to itself (WorkerWarmUp), served as a handed-off one is: not the primary's, so never
    /// acknowledged, measured or counted among the closes the primary hears of. False when this listener is unbound.
    /// </summary>
    public bool TryEnqueueWarmUp(int fd, in PeerAddress peer) =>
        _queue.Writer.TryWrite(new Queued(fd, new HandoffEntry(ListenerId, WarmUpHandoffId, AcceptedAt: 0, peer)));

    /// <summary>The handoff id of warm-up connections: the primary's are positive.</summary>
    private const long WarmUpHandoffId = -1;

    /// <summary>Raised on the control channel's reader thread when a handed-off socket is queued (see SharedConnectionListener).</summary>
    public Action? SocketQueued { get; set; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (TryAccept(out var connection))
            {
                return connection;
            }

            try
            {
                if (!await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null; // unbound: Kestrel's accept loop ends quietly
                }
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }
    }

    /// <summary>A queued socket as Kestrel's connection, acknowledged to the primary; false when none is queued.</summary>
    public bool TryAccept([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ConnectionContext? connection)
    {
        while (_queue.Reader.TryRead(out var handedOff))
        {
            Socket socket;
            var handle = new SafeSocketHandle(handedOff.Fd, ownsHandle: true);
            try
            {
                socket = HandedOffSocket.Create(handle, handedOff.Entry.Peer, EndPoint);
            }
            catch (SocketException e)
            {
                // Not a usable socket: close our copy and let the primary decide what to do with it.
                WorkerLog.HandoffUnusable(_logger, handedOff.Entry.HandoffId, e.SocketErrorCode);
                handle.Dispose();
                Acknowledge(handedOff.Entry.HandoffId, accepted: false);
                continue;
            }

            connection = _contextFactory.Create(socket);
            if (handedOff.Entry.HandoffId == WarmUpHandoffId)
            {
                return true;
            }

            _channel.Acknowledgements.Acknowledge(handedOff.Entry.HandoffId, accepted: true);
            _metrics.RecordHandoff(handedOff.Entry.AcceptedAt);
            connection.ConnectionClosed.UnsafeRegister(static channel
                => ((WorkerAcknowledgements)channel!).OnConnectionClosed(), _channel.Acknowledgements);
            return true;
        }

        connection = null;
        return false;
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _channel.RemoveListener(this);
        if (_queue.Writer.TryComplete())
        {
            // Sockets that arrived but Kestrel never accepted go back to the primary, which routes them elsewhere.
            while (_queue.Reader.TryRead(out var handedOff))
            {
                Libc.CloseDescriptor(handedOff.Fd);
                Acknowledge(handedOff.Entry.HandoffId, accepted: false);
            }
        }

        return ValueTask.CompletedTask;
    }

    private void Acknowledge(long handoffId, bool accepted)
    {
        if (handoffId != WarmUpHandoffId)
        {
            _channel.Acknowledgements.Acknowledge(handoffId, accepted);
        }
    }

    public ValueTask DisposeAsync() => UnbindAsync();

    private readonly record struct Queued(int Fd, HandoffEntry Entry);
}
