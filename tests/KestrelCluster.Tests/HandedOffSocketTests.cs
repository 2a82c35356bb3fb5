// A worker builds the Socket for a handed-off fd from what the primary's accept4 returned, as the runtime's accept
// path does, instead of asking the kernel. The result must be indistinguishable from the public constructor's.
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;

namespace KestrelCluster.Tests;

public sealed class HandedOffSocketTests
{
    [Fact]
    public void Runtime_HasTheSocketInternalsTheAcceptPathNeeds_UnlessTheAppTurnedThemOff()
    {
        // If a runtime update renames them, workers fall back to the public constructor (and log it): this test says so
        // first. CI runs the socket and handoff tests a second time with KESTRELCLUSTER_DISABLE_RUNTIME_INTERNALS=1,
        // and there the public path is the one under test.
        Assert.Equal(!RuntimeInternals.DisabledByApp, HandedOffSocket.CanSkipKernelQueries);
        Assert.True(RuntimeInternals.IsValidatedRuntime, $"validated on .NET {RuntimeInternals.ValidatedRuntimeMajor}, running on {Environment.Version}");
    }

    [Theory]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("::1", "::1")]
    [InlineData("::", "127.0.0.1")] // Kestrel's dual-mode wildcard listener, an IPv4 client: a v4-mapped address
    [InlineData("0.0.0.0", "127.0.0.1")]
    public async Task Create_FromTheAcceptedAddress_SameAsThePublicConstructor(string listenAddress, string clientAddress)
    {
        var address = IPAddress.Parse(listenAddress);
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && !Socket.OSSupportsIPv6)
        {
            return;
        }

        using var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (address.Equals(IPAddress.IPv6Any))
        {
            listener.DualMode = true;
        }

        listener.Bind(new IPEndPoint(address, 0));
        listener.Listen();
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var client = new Socket(IPAddress.Parse(clientAddress).AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Parse(clientAddress), port));

        var fd = PeerAddress.Accept(listener.SafeHandle, out var peer);
        Assert.True(fd >= 0);
        Assert.NotEqual(AddressFamily.Unknown, peer.Family);
        using var fromAccept = HandedOffSocket.Create(new SafeSocketHandle(fd, ownsHandle: true), peer, listener.LocalEndPoint!);
        using var fromKernel = new Socket(new SafeSocketHandle(fd, ownsHandle: false));

        Assert.Equal(fromKernel.AddressFamily, fromAccept.AddressFamily);
        Assert.Equal(fromKernel.SocketType, fromAccept.SocketType);
        Assert.Equal(fromKernel.ProtocolType, fromAccept.ProtocolType);
        Assert.Equal(fromKernel.Connected, fromAccept.Connected);
        Assert.Equal(fromKernel.Blocking, fromAccept.Blocking);
        Assert.Equal(fromKernel.LocalEndPoint, fromAccept.LocalEndPoint);
        Assert.Equal(fromKernel.RemoteEndPoint, fromAccept.RemoteEndPoint);
        Assert.Equal(client.LocalEndPoint, RemoteAsClientSeesIt(fromAccept.RemoteEndPoint!, client.AddressFamily));

        // And it is a working socket, async both ways, as Kestrel uses it.
        await client.SendAsync("ping"u8.ToArray());
        var buffer = new byte[4];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(4, await fromAccept.ReceiveAsync(buffer, SocketFlags.None, timeout.Token));
        await fromAccept.SendAsync(buffer, SocketFlags.None, timeout.Token);
        Assert.Equal(4, await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token));
        Assert.Equal("ping"u8.ToArray(), buffer);
    }

    [Fact]
    public async Task Create_KnowsTheAcceptedFdIsNonBlocking_SoTheRuntimeNeedNotSetIt()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);

        var fd = PeerAddress.Accept(listener.SafeHandle, out var peer);
        Assert.True(fd >= 0);
        Assert.NotEqual(0, fcntl(fd, F_GETFL) & O_NONBLOCK); // the primary's accept4(SOCK_NONBLOCK)
        using var socket = HandedOffSocket.Create(new SafeSocketHandle(fd, ownsHandle: true), peer, listener.LocalEndPoint!);

        // The runtime's own record (SocketAsyncContext.IsHandleNonBlocking): true, so Kestrel's first receive makes no
        // fcntl. With the shortcuts off, false: the runtime sets it itself on first use, as for any socket.
        var context = typeof(SafeSocketHandle).GetProperty("AsyncContext", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(socket.SafeHandle)!;
        Assert.Equal(!RuntimeInternals.DisabledByApp, (bool)context.GetType().GetProperty("IsHandleNonBlocking")!.GetValue(context)!);
        Assert.True(socket.Blocking); // to its user it is an accepted socket like any other

        await client.SendAsync("ping"u8.ToArray());
        var buffer = new byte[4];
        if (RuntimeInternals.DisabledByApp)
        {
            // The public constructor sees an fd that is already O_NONBLOCK, and allows async calls only (Kestrel's).
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            Assert.Equal(4, await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token));
        }
        else
        {
            Assert.Equal(4, socket.Receive(buffer)); // blocking calls still block, as on an accepted socket
        }

        Assert.Equal("ping"u8.ToArray(), buffer);
    }

    [Fact]
    public async Task Create_UnixDomainPeer_AsksTheKernel()
    {
        var path = Path.Combine(Path.GetTempPath(), $"kc-handed-{Guid.NewGuid():N}.sock");
        try
        {
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen();
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await client.ConnectAsync(new UnixDomainSocketEndPoint(path));

            var fd = PeerAddress.Accept(listener.SafeHandle, out var peer);
            Assert.True(fd >= 0);
            Assert.Equal(AddressFamily.Unknown, peer.Family);
            using var socket = HandedOffSocket.Create(new SafeSocketHandle(fd, ownsHandle: true), peer, listener.LocalEndPoint!);

            Assert.Equal(AddressFamily.Unix, socket.AddressFamily);
            Assert.True(socket.Connected);
            Assert.Equal(path, socket.LocalEndPoint!.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private const int F_GETFL = 3;
    private const int O_NONBLOCK = 0x800;

    [DllImport("libc", SetLastError = true)]
    private static extern int fcntl(int fd, int cmd);

    private static EndPoint RemoteAsClientSeesIt(EndPoint remote, AddressFamily clientFamily) =>
        remote is IPEndPoint { Address.IsIPv4MappedToIPv6: true } mapped && clientFamily == AddressFamily.InterNetwork
            ? new IPEndPoint(mapped.Address.MapToIPv4(), mapped.Port)
            : remote;
}
