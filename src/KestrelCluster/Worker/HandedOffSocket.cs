// Turns a handed-off fd into a Socket the way the runtime's own accept path does (Socket.UpdateAcceptSocket): the
// listener's family, type and protocol, the client's address from accept4 (it travels in the handoff frame),
// connected, and the listener's own address when it is bound to one. The public Socket(SafeSocketHandle)
// constructor instead asks the kernel for all of it — fstat, four getsockopt, fcntl, getsockname, getpeername, and
// a second getsockname when Kestrel reads LocalEndPoint: nine syscalls per connection that a socket from accept()
// never pays. The primary accepts with SOCK_NONBLOCK, so the socket's async context is also told the fd is
// non-blocking already (the runtime would otherwise fcntl it twice on Kestrel's first receive). The accept path is
// internal to the runtime, so this reaches Socket's private constructor and fields, and the async context's flag,
// with UnsafeAccessor, checked once per process; a runtime without them gets the public constructor (and a warning).
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker;

internal static class HandedOffSocket
{
    private static readonly IPAddress s_ipv4AnyMappedToIPv6 = IPAddress.Any.MapToIPv6();

    /// <summary>Whether this runtime has the Socket internals the accept-path construction needs.</summary>
    public static bool CanSkipKernelQueries { get; } = Probe();

    /// <summary>
    /// A connected Socket for <paramref name="handle"/>. With the client's address known and a TCP listener, no
    /// syscall; otherwise the public constructor, which throws <see cref="SocketException"/> if the fd is no socket.
    /// </summary>
    public static Socket Create(SafeSocketHandle handle, in PeerAddress peer, EndPoint listenEndPoint)
    {
        if (CanSkipKernelQueries && listenEndPoint is IPEndPoint local && peer.Family == local.AddressFamily && peer.ToEndPoint() is { } remote)
        {
            var socket = NewSocket(handle, loadPropertiesFromHandle: false);
            InitializeAccepted(socket, local, remote);
            IsHandleNonBlocking(AsyncContextOf(handle)) = true; // accept4(SOCK_NONBLOCK) in the primary
            return socket;
        }

        return new Socket(handle);
    }

    private static void InitializeAccepted(Socket socket, IPEndPoint local, IPEndPoint remote)
    {
        AddressFamilyOf(socket) = local.AddressFamily;
        SocketTypeOf(socket) = SocketType.Stream;
        ProtocolTypeOf(socket) = ProtocolType.Tcp;
        RemoteEndPointOf(socket) = remote;
        RightEndPointOf(socket) = local;

        // As for an accepted socket: a listener bound to one address gives every connection that local address; a
        // wildcard listener's connections ask the kernel (getsockname) if anyone reads LocalEndPoint.
        LocalEndPointOf(socket) = IsWildcard(local.Address) ? null : local;
        SetToConnected(socket);
    }

    private static bool IsWildcard(IPAddress address) =>
        address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(s_ipv4AnyMappedToIPv6);

    private static bool Probe()
    {
        try
        {
            // A handle that owns nothing: disposing the probe closes no fd.
            var local = new IPEndPoint(IPAddress.Loopback, 1);
            var remote = new IPEndPoint(IPAddress.Loopback, 2);
            using var socket = NewSocket(new SafeSocketHandle(-1, ownsHandle: false), loadPropertiesFromHandle: false);
            InitializeAccepted(socket, local, remote);
            _ = IsHandleNonBlocking(AsyncContextOf(socket.SafeHandle));
            return socket.Connected && socket.AddressFamily == AddressFamily.InterNetwork && socket.SocketType == SocketType.Stream
                && socket.ProtocolType == ProtocolType.Tcp && Equals(socket.LocalEndPoint, local) && Equals(socket.RemoteEndPoint, remote);
        }
        catch (Exception e) when (e is MissingMemberException or TypeLoadException)
        {
            return false;
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Socket NewSocket(SafeSocketHandle handle, bool loadPropertiesFromHandle);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_addressFamily")]
    private static extern ref AddressFamily AddressFamilyOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketType")]
    private static extern ref SocketType SocketTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_protocolType")]
    private static extern ref ProtocolType ProtocolTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_remoteEndPoint")]
    private static extern ref EndPoint? RemoteEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_rightEndPoint")]
    private static extern ref EndPoint? RightEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_localEndPoint")]
    private static extern ref EndPoint? LocalEndPointOf(Socket socket);

    private const string SocketAsyncContextType = "System.Net.Sockets.SocketAsyncContext, System.Net.Sockets";

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_AsyncContext")]
    [return: UnsafeAccessorType(SocketAsyncContextType)]
    private static extern object AsyncContextOf(SafeSocketHandle handle);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_isHandleNonBlocking")]
    private static extern ref bool IsHandleNonBlocking([UnsafeAccessorType(SocketAsyncContextType)] object context);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "SetToConnected")]
    private static extern void SetToConnected(Socket socket);
}
