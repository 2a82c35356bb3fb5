// The primary's listener for one endpoint: a real listening socket and the accept loop that hands every
// accepted socket to the dispatcher. Kestrel in the primary never sees a connection: AcceptAsync only waits
// for unbind, then returns null.
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed class PrimaryConnectionListener : IConnectionListener
{
    private readonly Socket _listenSocket;
    private readonly HandoffDispatcher _dispatcher;
    private readonly PrimaryListenerTable _table;
    private readonly ILogger _logger;
    private readonly bool _isTcp;
    private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _acceptLoop = Task.CompletedTask;
    private int _stopped;

    private PrimaryConnectionListener(int id, EndPoint requested, Socket listenSocket, HandoffDispatcher dispatcher, PrimaryListenerTable table, ILogger logger)
    {
        Id = id;
        RequestedEndPoint = requested;
        _listenSocket = listenSocket;
        _dispatcher = dispatcher;
        _table = table;
        _logger = logger;
        EndPoint = listenSocket.LocalEndPoint!;
        _isTcp = EndPoint is IPEndPoint;
    }

    /// <summary>The id workers use for this listener on the control channel.</summary>
    public int Id { get; }

    /// <summary>What Kestrel asked for (port 0 included); workers asking for the same thing get this listener.</summary>
    public EndPoint RequestedEndPoint { get; }

    /// <summary>The real bound endpoint.</summary>
    public EndPoint EndPoint { get; }

    public bool IsAccepting => Volatile.Read(ref _stopped) == 0;

    /// <summary>In shared mode, the listening socket's fd, handed to every worker; otherwise -1.</summary>
    public int SharedListeningDescriptor { get; private set; } = -1;

    /// <summary>
    /// Binds with Kestrel's own rules (dual mode for IPv6Any) and Kestrel's error for a taken address. In shared
    /// mode the workers accept on this socket and the primary runs no accept loop.
    /// </summary>
    public static PrimaryConnectionListener Bind(int id, EndPoint endpoint, int backlog, HandoffDispatcher dispatcher, PrimaryListenerTable table, ILogger logger, bool shared = false)
    {
        Socket socket;
        try
        {
            socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new AddressInUseException(e.Message, e);
        }

        try
        {
            socket.Listen(backlog);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var listener = new PrimaryConnectionListener(id, endpoint, socket, dispatcher, table, logger);
        if (shared)
        {
            listener.SharedListeningDescriptor = (int)socket.SafeHandle.DangerousGetHandle();
        }
        else
        {
            listener._acceptLoop = listener.AcceptLoopAsync();
        }

        return listener;
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await _unbound.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        return null;
    }

    /// <summary>Closes the listening socket: the kernel stops queueing new connections for this endpoint.</summary>
    public void StopAccepting()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            _listenSocket.Dispose();
            if (EndPoint is UnixDomainSocketEndPoint unix && unix.ToString() is { Length: > 0 } path && !path.StartsWith('\0'))
            {
                // Like Kestrel's sockets transport, leave no socket file behind (a later bind would fail on it).
                try
                {
                    File.Delete(path);
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        StopAccepting();
        _table.Remove(this);
        _unbound.TrySetResult();
        await _acceptLoop.ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => UnbindAsync();

    private async Task AcceptLoopAsync()
    {
        await Task.Yield();
        while (true)
        {
            await _dispatcher.WaitForRoomAsync().ConfigureAwait(false);

            Socket accepted;
            try
            {
                accepted = await _listenSocket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.InvalidArgument)
            {
                return;
            }
            catch (SocketException e)
            {
                // The connection was reset while it waited in the backlog: nothing was lost, accept the next one.
                PrimaryLog.AcceptFailed(_logger, EndPoint, e.SocketErrorCode);
                continue;
            }

            if (_isTcp)
            {
                // TCP_NODELAY belongs to the socket, not the fd: set here, it holds in the worker.
                accepted.NoDelay = true;
            }

            _dispatcher.Dispatch(new AcceptedConnection(this, accepted));
        }
    }

    public override string ToString() => $"listener {Id} ({EndPoint})";
}

/// <summary>A socket the primary accepted and still owns until a worker acknowledges it.</summary>
internal sealed class AcceptedConnection(PrimaryConnectionListener listener, Socket socket)
{
    public PrimaryConnectionListener Listener { get; } = listener;

    public Socket Socket { get; } = socket;

    /// <summary>How many times a worker refused it or went away holding it.</summary>
    public int Attempts { get; set; }

    /// <summary>The client's endpoint, read from the socket on first use only (schedulers that need it).</summary>
    public EndPoint? RemoteEndPoint
    {
        get
        {
            try
            {
                return _remoteEndPoint ??= Socket.RemoteEndPoint;
            }
            catch (SocketException)
            {
                return null; // the client is already gone
            }
        }
    }

    private EndPoint? _remoteEndPoint;
}
