// Handoff micro-benchmarks, no HTTP: how many fds per second SCM_RIGHTS moves over the control channel's
// socket type (one per message, and batched), and the latency of a new connection to "ConnectionContext
// created" along the cluster's path and along plain Kestrel's, measured with monotonic timestamps.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;
using KestrelCluster.Scheduling;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Benchmarks;

internal static class HandoffBenchmark
{
    /// <summary>fds per second moved from one thread to another, <paramref name="perMessage"/> fds per sendmsg.</summary>
    public static async Task<double> FdsPerSecondAsync(int totalFds, int perMessage)
    {
        var (sender, receiver, directory) = await SeqPacketPairAsync();
        using var tcpListener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        tcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        tcpListener.Listen();
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        client.Connect(tcpListener.LocalEndPoint!);
        using var accepted = tcpListener.Accept();
        var fd = (int)accepted.SafeHandle.DangerousGetHandle();
        var fds = Enumerable.Repeat(fd, perMessage).ToArray();
        var frame = new byte[1 + (12 * perMessage)];

        try
        {
            var receiving = Task.Run(() =>
            {
                var buffer = new byte[64 * 1024];
                var received = new int[ControlFrames.MaxFdsPerMessage];
                var count = 0;
                while (count < totalFds)
                {
                    var errno = Libc.ReceiveMessage(receiver.SafeHandle, buffer, received, out _, out var fdCount, out _);
                    if (errno == Libc.EAGAIN)
                    {
                        receiver.Poll(TimeSpan.FromMilliseconds(10), SelectMode.SelectRead);
                        continue;
                    }

                    for (var i = 0; i < fdCount; i++)
                    {
                        Libc.CloseDescriptor(received[i]);
                    }

                    count += fdCount;
                }
            });

            var stopwatch = Stopwatch.StartNew();
            for (var sent = 0; sent < totalFds; sent += perMessage)
            {
                while (Libc.SendMessage(sender.SafeHandle, frame, fds) == Libc.EAGAIN)
                {
                    sender.Poll(TimeSpan.FromMilliseconds(10), SelectMode.SelectWrite);
                }
            }

            await receiving;
            return totalFds / stopwatch.Elapsed.TotalSeconds;
        }
        finally
        {
            sender.Dispose();
            receiver.Dispose();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// Latency of one new connection, one at a time, along the product's path and along plain Kestrel's, interleaved
    /// in chunks. Cluster path: an accept thread blocked in accept4 (as the primary's) writes the handoff frame with
    /// its accept timestamp and sends the fd; a reader thread waits in poll() and drains with recvmsg (as a worker's
    /// WorkerControlChannel, with the product's own read loop); an async loop takes the fd from a channel, as
    /// Kestrel's accept loop does from WorkerConnectionListener, builds the Socket from accept4's address and creates
    /// the ConnectionContext with the workers' socket options. Plain path: Kestrel's own sockets transport, its accept
    /// loop already waiting, as in a running server. Both are timed from the client's connect() call to the
    /// ConnectionContext created, so the difference is what the handoff adds; the cluster path is also timed from
    /// the primary's accept (to the fd received, and to the ConnectionContext).
    /// </summary>
    public static async Task<HandoffLatency> LatencyAsync(int connections)
    {
        const int Chunks = 5;
        var perChunk = Math.Max(1, connections / Chunks);
        var plain = new List<double>();
        var cluster = new List<double>();
        var fdReceived = new List<double>();
        var acceptToContext = new List<double>();
        await using var plainPath = await PlainPath.StartAsync();
        await using var clusterPath = await ClusterPath.StartAsync();
        for (var chunk = 0; chunk < Chunks; chunk++)
        {
            for (var i = 0; i < perChunk; i++)
            {
                plain.Add(await plainPath.ConnectAsync());
            }

            for (var i = 0; i < perChunk; i++)
            {
                var (connect, received, accepted) = await clusterPath.ConnectAsync();
                cluster.Add(connect);
                fdReceived.Add(received);
                acceptToContext.Add(accepted);
            }
        }

        return new HandoffLatency([.. fdReceived], [.. acceptToContext], [.. cluster], [.. plain]);
    }

    private static readonly TimeSpan s_connectionTimeout = TimeSpan.FromSeconds(10);

    private static double MicrosecondsSince(long start, long end) => Stopwatch.GetElapsedTime(start, end).TotalMicroseconds;

    /// <summary>Plain Kestrel: its sockets transport, with its accept loop waiting.</summary>
    private sealed class PlainPath : IAsyncDisposable
    {
        private readonly IConnectionListener _listener;
        private readonly Channel<(ConnectionContext Connection, long CreatedAt)> _created = Channel.CreateUnbounded<(ConnectionContext, long)>();
        private readonly Task _accepting;

        private PlainPath(IConnectionListener listener)
        {
            _listener = listener;
            _accepting = Task.Run(async () =>
            {
                while (await _listener.AcceptAsync() is { } connection)
                {
                    _created.Writer.TryWrite((connection, Stopwatch.GetTimestamp()));
                }
            });
        }

        public static async Task<PlainPath> StartAsync()
        {
            var transport = new SocketTransportFactory(Options.Create(new SocketTransportOptions()), NullLoggerFactory.Instance);
            return new PlainPath(await transport.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)));
        }

        public async Task<double> ConnectAsync()
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var start = Stopwatch.GetTimestamp();
            await client.ConnectAsync(_listener.EndPoint);
            using var timeout = new CancellationTokenSource(s_connectionTimeout);
            var (connection, createdAt) = await _created.Reader.ReadAsync(timeout.Token);
            await connection.DisposeAsync();
            return MicrosecondsSince(start, createdAt);
        }

        public async ValueTask DisposeAsync()
        {
            await _listener.UnbindAsync();
            await _accepting;
            await _listener.DisposeAsync();
        }
    }

    /// <summary>
    /// The cluster's path, primary and worker in one process: the primary's own listener (accept thread), dispatcher
    /// and worker channel; on the worker's side the product's read loop and Socket construction, acknowledging each
    /// connection once it is a ConnectionContext, as a worker does.
    /// </summary>
    private sealed class ClusterPath : IAsyncDisposable
    {
        private readonly Socket _receiver;
        private readonly string _directory;
        private readonly PrimaryListenerTable _table = new();
        private readonly HandoffDispatcher _dispatcher = new(new RoundRobinScheduler(), NullLogger<HandoffDispatcher>.Instance);
        private readonly PrimaryConnectionListener _listener;
        private readonly WorkerChannel _channel;
        private readonly SocketConnectionContextFactory _factory;
        private readonly Channel<(int Fd, HandoffEntry Entry, long ReceivedAt)> _queue = Channel.CreateUnbounded<(int, HandoffEntry, long)>();
        private readonly Channel<(long AcceptedAt, long ReceivedAt, long CreatedAt)> _created = Channel.CreateUnbounded<(long, long, long)>();
        private readonly Task _accepting;

        private ClusterPath(Socket sender, Socket receiver, string directory)
        {
            (_receiver, _directory) = (receiver, directory);
            _listener = PrimaryConnectionListener.Bind(_table.NextId(), new IPEndPoint(IPAddress.Loopback, 0), 512, _dispatcher, _table, NullLogger.Instance);
            _table.Add(_listener);
            var endPoint = _listener.EndPoint;
            _channel = new WorkerChannel(1, 0, sender, _dispatcher, _table, 256, NullLogger.Instance);
            _ = _channel.RunAsync();
            _factory = new SocketConnectionContextFactory(KestrelCluster.Worker.Connections.WorkerSocketOptions.Create(new SocketTransportOptions(), workerCount: 2, NullLogger.Instance), NullLogger.Instance);

            // The worker registers for the listener and reports ready, as a real one does.
            _receiver.Send(ControlFrames.Register(1, endPoint));
            var reply = new byte[ControlFrames.MaxFrameLength];
            var length = _receiver.Receive(reply);
            if (!ControlFrames.TryReadRegistered(reply.AsSpan(0, length), out _, out var listenerId, out _) || listenerId != _listener.Id)
            {
                throw new InvalidOperationException("The benchmark's worker could not register.");
            }

            _receiver.Send(ControlFrames.Ready());

            // The worker's reader thread, with the product's read loop.
            _ = ControlChannelThread.Start("bench reader", () =>
            {
                var buffer = new byte[ControlFrames.MaxFrameLength + 1];
                var fds = new int[ControlFrames.MaxFdsPerMessage];
                var entries = new HandoffEntry[ControlFrames.MaxFdsPerMessage];
                ControlChannelThread.ReadMessages(_receiver, buffer, fds, "closed", (length, fdCount, _) =>
                {
                    if (!ControlFrames.TryReadHandoff(buffer.AsSpan(0, length), fdCount, entries))
                    {
                        return "malformed handoff frame";
                    }

                    var receivedAt = Stopwatch.GetTimestamp();
                    for (var i = 0; i < fdCount; i++)
                    {
                        _queue.Writer.TryWrite((fds[i], entries[i], receivedAt));
                    }

                    return null;
                });
                _queue.Writer.TryComplete();
            });

            // Kestrel's accept loop in the worker.
            _accepting = Task.Run(async () =>
            {
                await foreach (var (fd, entry, receivedAt) in _queue.Reader.ReadAllAsync())
                {
                    var socket = KestrelCluster.Worker.Connections.HandedOffSocket.Create(new SafeSocketHandle(fd, ownsHandle: true), entry.Peer, endPoint);
                    var connection = _factory.Create(socket);
                    _created.Writer.TryWrite((entry.AcceptedAt, receivedAt, Stopwatch.GetTimestamp()));
                    _receiver.Send(ControlFrames.Acks([(entry.HandoffId, true)])); // as a worker does, once Kestrel has the connection
                    await connection.DisposeAsync();
                }
            });
        }

        public static async Task<ClusterPath> StartAsync()
        {
            var (sender, receiver, directory) = await SeqPacketPairAsync();
            var path = new ClusterPath(sender, receiver, directory);
            var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 10;
            while (!path._channel.IsReady)
            {
                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException("The benchmark's worker channel did not become ready within 10 s.");
                }

                await Task.Delay(10);
            }

            return path;
        }

        /// <summary>connect() → ConnectionContext; accept → fd received; accept → ConnectionContext (µs).</summary>
        public async Task<(double Connect, double FdReceived, double AcceptToContext)> ConnectAsync()
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var start = Stopwatch.GetTimestamp();
            await client.ConnectAsync(_listener.EndPoint);
            using var timeout = new CancellationTokenSource(s_connectionTimeout);
            var (acceptedAt, receivedAt, createdAt) = await _created.Reader.ReadAsync(timeout.Token);
            return (MicrosecondsSince(start, createdAt), MicrosecondsSince(acceptedAt, receivedAt), MicrosecondsSince(acceptedAt, createdAt));
        }

        public async ValueTask DisposeAsync()
        {
            await _listener.UnbindAsync();
            _dispatcher.Stop();
            _channel.Close("the benchmark is over"); // shuts the primary's end: the reader ends, then the accept loop
            await _accepting;
            _receiver.Dispose();
            _dispatcher.Dispose();
            _factory.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static async Task<(Socket Sender, Socket Receiver, string Directory)> SeqPacketPairAsync()
    {
        var directory = Directory.CreateTempSubdirectory("kc-bench-").FullName;
        using var listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(directory, "s")));
        listener.Listen();
        var sender = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        await sender.ConnectAsync(listener.LocalEndPoint!);
        var receiver = await listener.AcceptAsync();
        return (sender, receiver, directory);
    }
}

/// <summary>Per-connection latencies in microseconds (see <see cref="HandoffBenchmark.LatencyAsync"/>).</summary>
internal sealed record HandoffLatency(double[] FdReceived, double[] AcceptToContext, double[] ClusterConnectToContext, double[] PlainConnectToContext);
