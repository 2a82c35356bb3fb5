// One accepted connection on its way to a worker: the raw fd, reference counted, the client's address from
// accept4, and when it was accepted.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Connections;

/// <summary>
/// A socket the primary accepted (a raw fd) and still owns until a worker acknowledges it. The fd is reference
/// counted as a SafeHandle is, without an object and a finalizer per connection: whoever uses the number (a send)
/// holds a reference, and <see cref="Close"/> closes the fd only once the last reference is gone, so the number is
/// never used after it could be reused.
/// </summary>
internal sealed class AcceptedConnection : ISchedulableConnection
{
    private EndPoint? _remoteEndPoint;
    private int _closed;
    private int _references = 1; // the owner's

    /// <summary>Takes ownership of <paramref name="fd"/>; it counts against the primary's fd budget until it is closed.</summary>
    public AcceptedConnection(PrimaryConnectionListener listener, int fd, PeerAddress peer)
    {
        Listener = listener;
        Fd = fd;
        Peer = peer;
        listener.FdBudget.OnOpened();
    }

    public PrimaryConnectionListener Listener { get; }

    public int Fd { get; }

    /// <summary>When the primary accepted it (Stopwatch timestamp); workers measure the handoff from here.</summary>
    public long AcceptedAt { get; } = Stopwatch.GetTimestamp();

    /// <summary>The client's address as accept4 returned it; travels to the worker with the socket.</summary>
    public PeerAddress Peer { get; }

    public EndPoint LocalEndPoint => Listener.EndPoint;

    /// <summary>The client's endpoint (schedulers that need it), from the accepted address or else from the socket.</summary>
    public EndPoint? RemoteEndPoint
    {
        get
        {
            if (_remoteEndPoint is null)
            {
                _remoteEndPoint = Peer.ToEndPoint() ?? ReadRemoteEndPoint();
            }

            return _remoteEndPoint;
        }
    }

    /// <summary>Closes the primary's copy (after a worker's ack, or at shutdown), once no one uses the fd.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            Release();
        }
    }

    /// <summary>Takes a reference on the fd; false once it is closed or closing.</summary>
    public bool TryAddRef()
    {
        while (true)
        {
            var references = Volatile.Read(ref _references);
            if (references == 0 || Volatile.Read(ref _closed) != 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _references, references + 1, references) == references)
            {
                return true;
            }
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            Libc.CloseDescriptor(Fd);
            Listener.FdBudget.OnClosed();
        }
    }

    private EndPoint? ReadRemoteEndPoint()
    {
        if (!TryAddRef())
        {
            return null;
        }

        try
        {
            // A non-owning wrapper: disposing it leaves the fd (and the socket) alone.
            using var socket = new Socket(new SafeSocketHandle(Fd, ownsHandle: false));
            return socket.RemoteEndPoint;
        }
        catch (SocketException)
        {
            return null; // the client is already gone
        }
        finally
        {
            Release();
        }
    }
}
