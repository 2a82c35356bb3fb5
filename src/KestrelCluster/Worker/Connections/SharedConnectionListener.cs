// Shared mode (Node's SCHED_NONE): the worker received the primary's listening socket itself and accepts on
// it; the kernel spreads connections over the workers. Every worker holds the same listening socket, so this
// one must never shut it down: the fd is wrapped without ownership (as Kestrel does for systemd sockets),
// which lets disposal abort the pending accept without touching the socket, and then only our fd is closed.
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
    private int _closed;

    public SharedConnectionListener(int fd, EndPoint boundEndPoint, SocketConnectionContextFactory contextFactory,
        WorkerControlChannel channel)
    {
        _fd = fd;
        _listenSocket = new Socket(new SafeSocketHandle(fd, ownsHandle: false));
        _contextFactory = contextFactory;
        _channel = channel;
        EndPoint = boundEndPoint;
    }

    public EndPoint EndPoint { get; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await _listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
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
            connection.ConnectionClosed.UnsafeRegister(static channel => ((WorkerAcknowledgements)channel!).OnConnectionClosed(),
                _channel.Acknowledgements);
            return connection;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _listenSocket.Dispose();
            Libc.CloseDescriptor(_fd);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}
