// Shared mode (Node's SCHED_NONE): the worker received the primary's listening socket itself and accepts on it; the
// kernel spreads connections over the workers. ReusePort mode likewise, on its slot's own socket. The primary (and in Shared
// mode every worker) holds the same listening socket, so this one must never shut it down: the fd is wrapped without
// ownership (as Kestrel does for systemd sockets), which lets disposal abort the pending accept without touching the
// socket, and then only our fd is closed.
//
// In ReusePort mode the primary also hands connections over, the way it does in RoundRobin: those it accepted on the socket
// of a slot that had no worker serving it (see Primary/Connections/ReusePortGroup.cs). They arrive in a handoff listener
// (WorkerConnectionListener) and are served first; one queued while an accept waits on the socket cancels that accept, so
// a handed-off connection never waits for the next one of the socket's own. Until the worker is ready it accepts nothing on
// the socket (a warm-up's connections to itself arrive as handed-off ones).
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace KestrelCluster.Worker.Connections;

internal sealed class SharedConnectionListener : IConnectionListener
{
    private readonly int _fd;
    private readonly Socket _listenSocket;
    private readonly SocketConnectionContextFactory _contextFactory;
    private readonly WorkerControlChannel _channel;
    private readonly WorkerConnectionListener _handoffs;
    private CancellationTokenSource _handoffQueued = new(); // cancelled when a handed-off socket is queued
    private int _closed;

    public SharedConnectionListener(int fd, EndPoint boundEndPoint, SocketConnectionContextFactory contextFactory,
        WorkerControlChannel channel, WorkerConnectionListener handoffs)
    {
        _fd = fd;
        _listenSocket = new Socket(new SafeSocketHandle(fd, ownsHandle: false));
        _contextFactory = contextFactory;
        _channel = channel;
        _handoffs = handoffs;
        handoffs.SocketQueued = () => Volatile.Read(ref _handoffQueued).Cancel();
        EndPoint = boundEndPoint;
    }

    public EndPoint EndPoint { get; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var handoffQueued = Volatile.Read(ref _handoffQueued);
            if (_handoffs.TryAccept(out var handedOff))
            {
                return handedOff;
            }

            Socket accepted;
            try
            {
                if (!_channel.ReadySent.IsCompleted)
                {
                    // Not ready yet (its app starting, or warming up through handed-off connections to itself): the socket's
                    // connections wait in its queue, or the primary takes them (ReusePort), as for any worker not ready.
                    await _channel.ReadySent.WaitAsync(handoffQueued.Token).ConfigureAwait(false);
                }

                accepted = await _listenSocket.AcceptAsync(handoffQueued.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (Volatile.Read(ref _closed) == 0)
            {
                // A handed-off socket was queued (the accept was cancelled before it took a connection: none is lost). A new
                // token for the next wait; the cancelled one is left to the collector (the reader thread may still cancel it).
                Volatile.Write(ref _handoffQueued, new CancellationTokenSource());
                continue;
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException
                || (e is SocketException se && se.SocketErrorCode is SocketError.OperationAborted or SocketError.InvalidArgument))
            {
                return null; // unbound
            }
            catch (SocketException)
            {
                continue; // reset while in the backlog
            }

            // TCP_NODELAY comes from the listening socket, where the primary set it (as Kestrel's NoDelay says).
            var connection = _contextFactory.Create(accepted);
            _channel.Acknowledgements.OnOwnConnectionOpened();
            connection.ConnectionClosed.UnsafeRegister(static channel => ((WorkerAcknowledgements)channel!).OnOwnConnectionClosed(),
                _channel.Acknowledgements);
            return connection;
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            Volatile.Read(ref _handoffQueued).Cancel(); // an accept loop waiting for the worker to be ready ends too
            _listenSocket.Dispose();
            Libc.CloseDescriptor(_fd);
            await _handoffs.UnbindAsync(cancellationToken).ConfigureAwait(false); // what was handed over and not taken goes back
        }
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}
