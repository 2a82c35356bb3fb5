// No fd number is used after it could be closed and reused: an accepted connection's fd stays open while a send holds
// a reference, whoever closes it meanwhile; a frame queued with a listening socket's fd carries its own duplicate, so
// the socket can be disposed at once and the frame still delivers that socket. And the libc layer's ABI check passes on this machine.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging.Abstractions;

namespace KestrelCluster.Tests;

public sealed class FdLifetimeTests
{
    [Fact]
    public void AcceptedConnection_ClosedWhileReferenced_TheFdStaysOpenUntilTheLastRelease()
    {
        using var table = new TableWithListener();
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        client.Connect(table.ListenSocket.LocalEndPoint!);
        var fd = AcceptOne(table);
        var connection = new AcceptedConnection(table.Listener, fd, default);
        var socket = OpenFile(fd);

        Assert.True(connection.TryAddRef()); // a send in progress
        connection.Close();                  // the owner closes it meanwhile

        Assert.Equal(socket, OpenFile(fd)); // still open while referenced
        Assert.False(connection.TryAddRef(), "no new reference once closed");
        connection.Release();
        Assert.NotEqual(socket, OpenFile(fd)); // closed with the last reference
    }

    [Fact]
    public void ControlFrame_WithAListeningSocketsFd_DeliversThatSocket_EvenWhenItIsDisposedWhileTheFrameWaits()
    {
        var directory = Directory.CreateTempSubdirectory("kc-fd-test-").FullName;
        try
        {
            using var listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(directory, "c.sock")));
            listener.Listen();
            using var sender = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
            sender.Connect(listener.LocalEndPoint!);
            using var peer = listener.Accept();
            using var writer = new ControlChannelWriter(sender, "fd test writer", _ => { });

            // The peer's queue is full, so the frame with the fd waits in the writer's queue.
            var filler = ControlFrames.Message(broadcast: false, fromWorkerId: 0, new byte[16 * 1024]);
            while (writer.QueuedCount == 0)
            {
                Assert.True(writer.TrySend(filler));
            }

            var shared = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            shared.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            shared.Listen();
            var sharedFd = (int)shared.SafeHandle.DangerousGetHandle();
            var sharedSocket = OpenFile(sharedFd);
            var sharedPort = ((IPEndPoint)shared.LocalEndPoint!).Port;
            Assert.True(writer.TrySend(ControlFrames.Ready(), shared.SafeHandle));
            shared.Dispose(); // the listener is unbound while the frame waits: at once, no waiting for the peer

            // The owner's fd is closed; the queued frame holds its own duplicate.
            Assert.NotEqual(sharedSocket, OpenFile(sharedFd));

            // The peer reads: the frame arrives with the very socket, still listening on its port.
            var buffer = new byte[ControlFrames.MaxFrameLength];
            var fds = new int[1];
            int received;
            do
            {
                Assert.True(peer.Poll(TimeSpan.FromSeconds(10), SelectMode.SelectRead));
                Assert.Equal(0, Libc.ReceiveMessage(peer.SafeHandle, buffer, fds, out _, out received, out _));
            }
            while (received == 0);

            using var passed = new Socket(new SafeSocketHandle(fds[0], ownsHandle: true));
            Assert.Equal(sharedPort, ((IPEndPoint)passed.LocalEndPoint!).Port); // the very listening socket
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Libc_AbiCheck_PassesOnThisMachine()
    {
        Assert.Null(Libc.AbiMismatch);
    }

    private static int AcceptOne(TableWithListener table)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var fd = PeerAddress.Accept(table.ListenSocket.SafeHandle, out _);
            if (fd >= 0 || DateTime.UtcNow > deadline)
            {
                return fd;
            }

            table.ListenSocket.Poll(TimeSpan.FromSeconds(1), SelectMode.SelectRead);
        }
    }

    /// <summary>
    /// What fd number <paramref name="fd"/> refers to ("socket:[inode]"), or null once it is closed. Tests run in
    /// parallel, so a closed number can be reused at once by another test: compare what it refers to, not whether it
    /// is open.
    /// </summary>
    private static string? OpenFile(int fd) => new FileInfo($"/proc/self/fd/{fd}").LinkTarget;

    /// <summary>A primary listener (for AcceptedConnection) and a plain listening socket the test accepts on itself.</summary>
    private sealed class TableWithListener : IDisposable
    {
        private readonly HandoffDispatcher _dispatcher = new(new KestrelCluster.Scheduling.RoundRobinScheduler(),
            NullLogger<HandoffDispatcher>.Instance);

        public TableWithListener()
        {
            ListenSocket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            ListenSocket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            ListenSocket.Listen();
            Listener = PrimaryConnectionListener.Bind(1, new IPEndPoint(IPAddress.Loopback, 0), 16, _dispatcher, new PrimaryListenerTable(),
                NullLogger.Instance);
        }

        public Socket ListenSocket { get; }

        public PrimaryConnectionListener Listener { get; }

        public void Dispose()
        {
            Listener.StopAccepting();
            _dispatcher.Stop();
            _dispatcher.Dispose();
            ListenSocket.Dispose();
        }
    }
}
