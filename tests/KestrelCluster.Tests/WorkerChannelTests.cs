// The primary's side of a worker's control channel over real sockets, with this test playing the worker:
// a worker that breaks the protocol is dropped and the connection it held goes to the next worker.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;

namespace KestrelCluster.Tests;

public sealed class WorkerChannelTests : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kc-channel-test-").FullName;
    private readonly Socket _controlListener = new(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
    private readonly PrimaryListenerTable _table = new();
    private readonly HandoffDispatcher _dispatcher = new(new KestrelCluster.Scheduling.RoundRobinScheduler(), NullLogger<HandoffDispatcher>.Instance);
    private readonly PrimaryConnectionListener _listener;

    public WorkerChannelTests()
    {
        _controlListener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_directory, "c.sock")));
        _controlListener.Listen();
        _listener = PrimaryConnectionListener.Bind(_table.NextId(), new IPEndPoint(IPAddress.Loopback, 0), 16, _dispatcher, _table, NullLogger.Instance);
        _table.Add(_listener);
    }

    [Fact]
    public async Task Channel_WorkerSendsGarbage_ChannelDroppedAndItsConnectionServedByTheNextWorker()
    {
        // Worker A registers, becomes ready and is handed a connection it never acknowledges.
        var (channelA, workerA) = await ConnectWorkerAsync(1);
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(_listener.EndPoint);
        var (fdA, _, _) = await ReceiveHandoffAsync(workerA);
        Libc.CloseDescriptor(fdA);
        Assert.Equal(1, channelA.InFlightCount);

        // Then it sends a frame of an unknown type.
        await workerA.SendAsync(new byte[] { 0xEE, 0, 1 });
        await channelA.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, _dispatcher.WaitingCount); // nothing lost: the connection waits for a worker

        // Worker B gets it, acknowledges it, and serves the very client connection A dropped.
        var (channelB, workerB) = await ConnectWorkerAsync(2);
        var (fdB, handoffId, _) = await ReceiveHandoffAsync(workerB);
        using var served = new Socket(new SafeSocketHandle(fdB, ownsHandle: true));
        await workerB.SendAsync(ControlFrames.Acks([(handoffId, true)]));
        await served.SendAsync("hello"u8.ToArray());

        var buffer = new byte[16];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(buffer, 0, read));
        await Wait.UntilAsync(() => channelB.InFlightCount == 0 && channelB.HandedOff == 1, TimeSpan.FromSeconds(10), "worker B's ack is processed");
        Assert.Equal(0, _dispatcher.WaitingCount);
    }

    [Fact]
    public async Task Scheduling_WorkerQueueFullOfMessages_TheWorkerGetsConnectionsAgainAsSoonAsItReads()
    {
        // The primary's messages fill the worker's receive queue; no connection is in flight, so no ack will come.
        var (channel, worker) = await ConnectWorkerAsync(1);
        // Small messages, so that what is left of the queue when one is refused cannot hold a handoff either.
        var message = ControlFrames.Message(broadcast: false, fromWorkerId: 0, new byte[64]);
        var messages = new List<Task>();
        while (channel.QueuedFrames == 0)
        {
            messages.Add(channel.SendMessageAsync(message, CancellationToken.None));
        }

        // A client connects: its handoff finds the queue full, and waits for a worker that can take it.
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(_listener.EndPoint);
        await Wait.UntilAsync(() => _dispatcher.WaitingCount == 1 && !channel.CanTake(_listener.Id), TimeSpan.FromSeconds(10), "the handoff was refused by a full queue");

        // The worker reads its messages (and acknowledges nothing): the connection follows them.
        var frame = new byte[ControlFrames.MaxFrameLength];
        var fds = new int[ControlFrames.MaxFdsPerMessage];
        var handedOff = false;
        while (!handedOff)
        {
            Assert.True(worker.Poll(TimeSpan.FromSeconds(10), SelectMode.SelectRead), "the worker gets the connection after its messages");
            Assert.Equal(0, Libc.ReceiveMessage(worker.SafeHandle, frame, fds, out _, out var fdCount, out _));
            handedOff = (FrameType)frame[0] == FrameType.Handoff;
            if (handedOff)
            {
                Assert.Equal(1, fdCount);
                Libc.CloseDescriptor(fds[0]);
            }
        }

        await Task.WhenAll(messages).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, _dispatcher.WaitingCount);
    }

    [Fact]
    public async Task Handoff_TcpConnection_ArrivesWithNoDelaySetAndTheClientsAddressFromAccept()
    {
        // TCP_NODELAY is set once, on the listening socket; accepted sockets inherit it (it belongs to the socket, not
        // the fd, so it reaches the worker too; a custom listener must set it, as Kestrel's own does).
        var (_, worker) = await ConnectWorkerAsync(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(_listener.EndPoint);

        var (fd, handoffId, peer) = await ReceiveHandoffAsync(worker);
        using var received = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        await worker.SendAsync(ControlFrames.Acks([(handoffId, true)]));

        Assert.True(received.NoDelay);
        Assert.Equal(client.LocalEndPoint, peer);
    }

    [Fact]
    public async Task Handoff_ConnectionsWaitingForAWorker_GoOutTogether_UpToItsInFlightLimit()
    {
        // Ten clients connect while no worker is ready: they wait in the dispatcher.
        var (channel, worker) = await ConnectWorkerAsync(1, ready: false);
        var clients = new List<Socket>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                clients.Add(client);
                await client.ConnectAsync(_listener.EndPoint);
            }

            await Wait.UntilAsync(() => _dispatcher.WaitingCount == 10, TimeSpan.FromSeconds(10), "all ten wait for a worker");

            // The worker becomes ready: as many as its in-flight limit (8) arrive in one message, the rest wait.
            await worker.SendAsync(ControlFrames.Ready());
            var first = await ReceiveHandoffsAsync(worker);
            Assert.Equal(8, first.Count);
            Assert.Equal(8, channel.InFlightCount);
            Assert.Equal(2, _dispatcher.WaitingCount);

            // One ack frame for all eight frees room: the last two follow, together.
            await worker.SendAsync(ControlFrames.Acks([.. first.Select(h => (h.HandoffId, true))]));
            first.ForEach(h => Libc.CloseDescriptor(h.Fd));
            var second = await ReceiveHandoffsAsync(worker);
            Assert.Equal(2, second.Count);
            await AcknowledgeAllAsync(channel, worker, second, expectedHandedOff: 10);

            // Every client arrived exactly once, each with its own address.
            var received = first.Concat(second).ToList();
            Assert.Equal(10, received.Select(h => h.HandoffId).Distinct().Count());
            Assert.Equal(clients.Select(c => c.LocalEndPoint).OrderBy(e => e!.ToString()), received.Select(h => h.Peer).OrderBy(e => e!.ToString()));
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task Handoff_MoreRoutedThanOneMessageHolds_GoesOutInSeveralMessages()
    {
        // Concurrent flushes (the accept thread, an ack) can route more to one worker than fit in a message.
        var (channel, worker) = await ConnectWorkerAsync(1);
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        tcp.Listen(128);
        var clients = new List<Socket>();
        try
        {
            const int Count = ControlFrames.MaxFdsPerMessage + 36;
            for (var i = 0; i < Count; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                clients.Add(client);
                client.Connect(tcp.LocalEndPoint!);
                var fd = PeerAddress.Accept(tcp.SafeHandle, out var peer); // as the primary's accept thread does
                Assert.True(fd >= 0);
                channel.AddToOutbox(new AcceptedConnection(_listener, fd, peer));
            }

            channel.SendOutbox();

            var first = await ReceiveHandoffsAsync(worker);
            var second = await ReceiveHandoffsAsync(worker);
            Assert.Equal((ControlFrames.MaxFdsPerMessage, 36), (first.Count, second.Count));
            Assert.Equal(Count, channel.InFlightCount);

            await AcknowledgeAllAsync(channel, worker, [.. first, .. second], expectedHandedOff: Count);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task Ack_CarriesTheWorkersClosedConnections_IntoTheOpenConnectionCount()
    {
        var (channel, worker) = await ConnectWorkerAsync(1);
        using var first = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await first.ConnectAsync(_listener.EndPoint);
        await AcknowledgeAllAsync(channel, worker, [await ReceiveHandoffAsync(worker)], expectedHandedOff: 1);
        Assert.Equal(1, channel.OpenConnections);

        // The first connection closes in the worker; the count rides on the second connection's ack.
        using var second = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await second.ConnectAsync(_listener.EndPoint);
        await AcknowledgeAllAsync(channel, worker, [await ReceiveHandoffAsync(worker)], expectedHandedOff: 2, closed: 1);
        Assert.Equal(1, channel.OpenConnections);

        // With no ack to ride on, a count travels alone.
        await worker.SendAsync(ControlFrames.ConnectionsClosed(1));
        await Wait.UntilAsync(() => channel.OpenConnections == 0, TimeSpan.FromSeconds(10), "the lone close report is processed");
    }

    [Fact]
    public async Task Channel_AckForAConnectionNeverSent_IsAProtocolViolation()
    {
        var (channel, worker) = await ConnectWorkerAsync(1);
        await worker.SendAsync(ControlFrames.Acks([(123_456L, true)]));

        await channel.Closed.WaitAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.UnbindAsync();
        _dispatcher.Stop();
        _controlListener.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>Connects a fake worker: registers the listener and reports ready, as a real one does.</summary>
    private async Task<(WorkerChannel Channel, Socket Worker)> ConnectWorkerAsync(int id, bool ready = true)
    {
        var worker = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await worker.ConnectAsync(_controlListener.LocalEndPoint!);
        var server = await _controlListener.AcceptAsync();
        var channel = new WorkerChannel(id, id - 1, server, _dispatcher, _table, 8, NullLogger.Instance);
        _ = channel.RunAsync();

        await worker.SendAsync(ControlFrames.Register(1, _listener.EndPoint));
        var reply = new byte[ControlFrames.MaxFrameLength];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var length = await worker.ReceiveAsync(reply, SocketFlags.None, timeout.Token);
        Assert.True(ControlFrames.TryReadRegistered(reply.AsSpan(0, length), out _, out var listenerId, out _));
        Assert.Equal(_listener.Id, listenerId);
        if (!ready)
        {
            return (channel, worker);
        }

        await worker.SendAsync(ControlFrames.Ready());
        await Wait.UntilAsync(() => channel.IsReady, TimeSpan.FromSeconds(10), "the channel is ready");
        return (channel, worker);
    }

    /// <summary>
    /// Acknowledges <paramref name="handoffs"/> in one frame (reporting <paramref name="closed"/> closed connections),
    /// waits until the channel has processed it, and closes the fds.
    /// </summary>
    private static async Task AcknowledgeAllAsync(WorkerChannel channel, Socket worker, List<(int Fd, long HandoffId, EndPoint? Peer)> handoffs, int expectedHandedOff, int closed = 0)
    {
        await worker.SendAsync(ControlFrames.Acks([.. handoffs.Select(h => (h.HandoffId, true))], closed));
        await Wait.UntilAsync(() => channel.HandedOff == expectedHandedOff && channel.InFlightCount == 0, TimeSpan.FromSeconds(10), "every ack is processed");
        handoffs.ForEach(h => Libc.CloseDescriptor(h.Fd));
    }

    private static async Task<(int Fd, long HandoffId, EndPoint? Peer)> ReceiveHandoffAsync(Socket worker) => Assert.Single(await ReceiveHandoffsAsync(worker));

    /// <summary>Receives one handoff message: every fd in it, with its entry.</summary>
    private static async Task<List<(int Fd, long HandoffId, EndPoint? Peer)>> ReceiveHandoffsAsync(Socket worker)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var frame = new byte[ControlFrames.MaxFrameLength];
        var fds = new int[ControlFrames.MaxFdsPerMessage];
        int errno, length, fdCount;
        bool truncated;
        do
        {
            // A zero-byte receive completes on the socket's readiness event, and a late edge-triggered event for a
            // message already read completes it with nothing queued (EAGAIN): readiness is a hint, so wait again.
            await worker.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, timeout.Token);
            errno = Libc.ReceiveMessage(worker.SafeHandle, frame, fds, out length, out fdCount, out truncated);
        }
        while (errno == Libc.EAGAIN);

        Assert.Equal(0, errno);
        Assert.False(truncated);
        var entries = new HandoffEntry[ControlFrames.MaxFdsPerMessage];
        Assert.True(ControlFrames.TryReadHandoff(frame.AsSpan(0, length), fdCount, entries));
        return [.. Enumerable.Range(0, fdCount).Select(i => (fds[i], entries[i].HandoffId, entries[i].Peer.ToEndPoint()))];
    }
}
