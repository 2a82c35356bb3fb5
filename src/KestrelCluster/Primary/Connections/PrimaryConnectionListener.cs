// The primary's listener for one endpoint: a real listening socket and the accept loop that hands every
// accepted socket to the dispatcher. Kestrel in the primary never sees a connection: AcceptAsync only waits
// for unbind, then returns null.
//
// The accept loop is a dedicated thread: it waits in epoll on the non-blocking listening socket, then accepts
// with accept4() until the backlog is empty and hands the whole burst to the dispatcher at once, so connections
// that arrive together travel to a worker together, several fds in one sendmsg. Per connection that is one
// syscall and no Socket object, task or thread-pool hop — the primary's whole job is this loop, and with
// Connection: close traffic its CPU per connection is what limits the cluster (see benchmarks/).
//
// With ClusterOptions.AcceptThreads above 1, that many threads run this loop on the same listening socket, each
// with its own epoll instance (EPOLLEXCLUSIVE: a connection wakes one of them) and its own dispatcher shard. One
// socket, not SO_REUSEPORT siblings: nothing else can join the port, a systemd-activated or Unix domain socket works
// the same, and closing it never strands connections in a sibling's queue. Scheduling=ReusePort is the exception, by
// choice: a socket per worker slot (ReusePortGroup), each kept by the primary so that none is closed under its queue.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace KestrelCluster.Primary.Connections;

internal sealed partial class PrimaryConnectionListener : IConnectionListener
{
    /// <summary>Most connections accepted before they go to the dispatcher (as many as fit in one handoff message).</summary>
    private const int MaxBurst = ControlFrames.MaxFdsPerMessage;

    private readonly Socket _listenSocket;
    private readonly HandoffDispatcher _dispatcher;
    private readonly PrimaryListenerTable _table;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread[] _acceptThreads = [];
    private SafeFileHandle? _stopEvent; // wakes every accept thread for good (never a shutdown of the socket)
    // Who still uses the listening socket: the owner until StopAccepting, and each accept thread until it exits. The last
    // one closes it. An accept thread waits in epoll, which holds no reference to the socket: closed while a thread
    // is woken and not yet running, its epoll registration would vanish with the wake-up, and the thread sleep forever.
    private int _socketUsers = 1;
    private int _stopped;
    private readonly Lock _startStop = new(); // starting the accept threads late (StartAccepting) against stopping
    private int _pendingAcceptThreads; // how many StartAccepting starts: a new primary taking over accepts once its workers are ready
    private volatile bool _ownsSocketFile; // a Unix domain socket's file is deleted at the stop by the process that owns it
    private ReusePortGroup? _reusePort; // Scheduling=ReusePort: a socket per slot, _listenSocket is slot 0's

    private PrimaryConnectionListener(int id, EndPoint requested, Socket listenSocket, HandoffDispatcher dispatcher,
        PrimaryListenerTable table, ILogger logger)
    {
        Id = id;
        RequestedEndPoint = requested;
        _listenSocket = listenSocket;
        _dispatcher = dispatcher;
        _table = table;
        _logger = logger;
        EndPoint = listenSocket.LocalEndPoint!;
    }

    /// <summary>The id workers use for this listener on the control channel.</summary>
    public int Id { get; }

    /// <summary>What Kestrel asked for (port 0 included); workers asking for the same thing get this listener.</summary>
    public EndPoint RequestedEndPoint { get; }

    /// <summary>The real bound endpoint.</summary>
    public EndPoint EndPoint { get; }

    public bool IsAccepting => Volatile.Read(ref _stopped) == 0;

    /// <summary>The primary's fd budget, which every connection accepted here counts against while the primary holds it.</summary>
    public ConnectionFdBudget FdBudget => _dispatcher.FdBudget;

    /// <summary>In shared mode, the listening socket, handed to every worker (its fd); otherwise null.</summary>
    public SafeSocketHandle? SharedListeningSocket { get; private set; }

    /// <summary>
    /// Binds as Kestrel's sockets transport does, through <paramref name="createBoundListenSocket"/>
    /// (SocketTransportOptions.CreateBoundListenSocket: dual mode for IPv6Any by default, or whatever the app set
    /// there), with Kestrel's error for a taken address. In shared
    /// mode the workers accept on this socket and the primary runs no accept loop. TCP_NODELAY (Kestrel's
    /// SocketTransportOptions.NoDelay) is set once, on the listening socket: Linux gives every accepted socket the
    /// listener's options, which saves a setsockopt per connection.
    /// </summary>
    /// <remarks>
    /// A new primary taking over from a running one (a primary upgrade) passes the running primary's listening socket as
    /// <paramref name="takenOver"/>: it listens already, and nothing is bound. With <paramref name="startAccepting"/> false
    /// the accept threads wait for <see cref="StartAccepting"/>.
    /// </remarks>
    public static PrimaryConnectionListener Bind(int id, EndPoint endpoint, int backlog, HandoffDispatcher dispatcher,
        PrimaryListenerTable table, ILogger logger,
        bool shared = false, bool noDelay = true, Func<EndPoint, Socket>? createBoundListenSocket = null, int acceptThreads = 1,
        Socket? takenOver = null, bool startAccepting = true, int reusePortSlots = 0, Socket[]? takenGroup = null)
    {
        if (reusePortSlots > 0 && endpoint is IPEndPoint ip && takenOver is null)
        {
            return BindReusePort(id, ip, reusePortSlots, backlog, dispatcher, table, logger, noDelay, takenGroup, startAccepting);
        }

        Socket socket;
        try
        {
            socket = takenOver ?? (endpoint is FileHandleEndPoint activated
                ? AdoptActivatedSocket(activated)
                : (createBoundListenSocket ?? SocketTransportOptions.CreateDefaultBoundListenSocket)(endpoint));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new AddressInUseException(e.Message, e);
        }

        try
        {
            if (noDelay && socket.LocalEndPoint is IPEndPoint)
            {
                socket.NoDelay = true;
            }

            if (endpoint is not FileHandleEndPoint && takenOver is null)
            {
                // An activated socket listens already, with the backlog its .socket unit gave it; a taken-over one with the
                // backlog the previous primary gave it (listen() again would only change that).
                socket.Listen(backlog);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var listener = new PrimaryConnectionListener(id, endpoint, socket, dispatcher, table, logger)
        {
            // Not a socket systemd passed (its file is the socket unit's), nor one taken over before the takeover is done.
            _ownsSocketFile = takenOver is null && endpoint is not FileHandleEndPoint,
        };
        if (shared)
        {
            listener.SharedListeningSocket = socket.SafeHandle;
        }
        else
        {
            listener._pendingAcceptThreads = acceptThreads;
            if (startAccepting)
            {
                listener.StartAccepting();
            }
        }

        return listener;
    }

    /// <summary>
    /// A listening socket systemd passed (socket activation: LISTEN_FDS, Kestrel's UseSystemd()). It was inherited
    /// without close-on-exec; it gets it now, before any worker starts, so that no worker holds the listening socket.
    /// </summary>
    private static Socket AdoptActivatedSocket(FileHandleEndPoint endpoint)
    {
        var fd = checked((int)endpoint.FileHandle);
        if (!Libc.SetCloseOnExec(fd))
        {
            throw new InvalidOperationException($"File handle {fd} (socket activation) is not an open file descriptor.");
        }

        var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        if (socket.LocalEndPoint is not (IPEndPoint or UnixDomainSocketEndPoint))
        {
            socket.Dispose();
            throw new InvalidOperationException($"File handle {fd} (socket activation) is not a TCP or Unix domain stream socket.");
        }

        return socket;
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

    /// <summary>Starts the accept threads that <see cref="Bind"/> held back (once; not after a stop).</summary>
    public void StartAccepting()
    {
        lock (_startStop)
        {
            if (_reusePort is { } group && IsAccepting)
            {
                group.Start(this); // the sockets of slots no worker serves
            }
            else if (_pendingAcceptThreads > 0 && IsAccepting)
            {
                StartAcceptThreads(_pendingAcceptThreads);
                _pendingAcceptThreads = 0;
            }
        }
    }

    /// <summary>
    /// The takeover of this listener's socket is done (the old primary has stopped accepting): this process owns a Unix domain
    /// socket's file now, and deletes it when it stops. Until then a failed new primary leaves the old one's file alone.
    /// </summary>
    public void ClaimSocketFile() => _ownsSocketFile = RequestedEndPoint is not FileHandleEndPoint;

    /// <summary>The listening sockets (one, or in ReusePort one per slot), to pass to a new primary taking over (an upgrade).</summary>
    public IReadOnlyList<SafeSocketHandle> ListeningSockets => _reusePort?.Sockets ?? [_listenSocket.SafeHandle];

    /// <summary>
    /// A new primary took this socket over (a primary upgrade): stop accepting as <see cref="StopAccepting"/> does, but
    /// leave a Unix domain socket's file, which the new primary listens on.
    /// </summary>
    public void HandOver()
    {
        _ownsSocketFile = false;
        StopAccepting();
    }

    /// <summary>Returns once no accept thread runs: every connection this listener accepted has reached the dispatcher.</summary>
    public void WaitForAcceptThreads() => Array.ForEach(_acceptThreads, t => t.Join());

    /// <summary>
    /// Stops accepting and closes this process's copy of the listening socket (once the last accept thread is out). A
    /// socket this listener bound stops listening with it; one systemd passed goes on listening in systemd, with the
    /// connections waiting in its backlog kept for the next start — which a shutdown() would have reset.
    /// </summary>
    public void StopAccepting()
    {
        lock (_startStop)
        {
            if (Interlocked.Exchange(ref _stopped, 1) != 0)
            {
                return;
            }

            if (_stopEvent is not null)
            {
                Libc.Signal(_stopEvent); // every accept thread wakes, sees it stopped, and leaves
            }

            _reusePort?.Stop();
            ReleaseSocket();
            if (_ownsSocketFile && EndPoint is UnixDomainSocketEndPoint unix
                && unix.ToString() is { Length: > 0 } path && !path.StartsWith('\0'))
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

    private void ReleaseSocket()
    {
        if (Interlocked.Decrement(ref _socketUsers) == 0)
        {
            // The fd only: Socket.Dispose would also delete a Unix domain socket's file that this Socket bound, which after a
            // handover is the new primary's. Whether to delete it is StopAccepting's decision. A reuseport group closes its own.
            if (_reusePort is null)
            {
                _listenSocket.SafeHandle.Dispose();
            }

            _stopEvent?.Dispose();
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        StopAccepting();
        _table.Remove(this);
        _unbound.TrySetResult();
        if (_acceptThreads.Length > 0)
        {
            await Task.Run(() => Array.ForEach(_acceptThreads, t => t.Join()), CancellationToken.None).ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => UnbindAsync();

    public override string ToString() => $"listener {Id} ({EndPoint})";
}
