// Turns a handed-off fd into a Socket the way the runtime's own accept path does (Socket.UpdateAcceptSocket): the
// listener's family, type and protocol, the client's address from accept4 (it travels in the handoff frame),
// connected, and the listener's own address when it is bound to one. The public Socket(SafeSocketHandle)
// constructor instead asks the kernel for all of it — fstat, four getsockopt, fcntl, getsockname, getpeername, and
// a second getsockname when Kestrel reads LocalEndPoint: nine syscalls per connection that a socket from accept()
// never pays. The primary accepts with SOCK_NONBLOCK, so the socket's async context is also told the fd is
// non-blocking already (the runtime would otherwise fcntl it twice on Kestrel's first receive). The accept path is
// internal to the runtime: RuntimeInternals holds that shortcut and its fence; without it, the public constructor.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker.Connections;

internal static class HandedOffSocket
{
    /// <summary>Whether sockets are built as the accept path builds them (else the public constructor asks the kernel).</summary>
    public static bool CanSkipKernelQueries => RuntimeInternals.CanBuildAcceptedSocket;

    /// <summary>
    /// A connected Socket for <paramref name="handle"/>. With the client's address known and a TCP listener, no
    /// syscall; otherwise the public constructor, which throws <see cref="SocketException"/> if the fd is no socket.
    /// </summary>
    public static Socket Create(SafeSocketHandle handle, in PeerAddress peer, EndPoint listenEndPoint)
    {
        if (CanSkipKernelQueries && listenEndPoint is IPEndPoint local && peer.Family == local.AddressFamily
            && peer.ToEndPoint() is { } remote)
        {
            return RuntimeInternals.BuildAcceptedSocket(handle, local, remote);
        }

        return new Socket(handle);
    }
}
