// Handoff micro-benchmarks, no HTTP: how many fds per second SCM_RIGHTS moves over the control channel's
// socket type (one per message, and batched), and the latency from "accepted" to "ConnectionContext created"
// on the receiving side, measured with monotonic timestamps.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;

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
                var received = new int[Libc.MaxFdsPerMessage];
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
    /// Microseconds from accept (in the "primary") to a started ConnectionContext (in the "worker"), per connection,
    /// one connection at a time, along the product's path: the accept timestamp travels in the frame; a reader
    /// thread waits in poll() and drains with recvmsg (WorkerControlChannel); an async loop takes the fd from a
    /// channel, as Kestrel's accept loop does from WorkerConnectionListener, and creates the ConnectionContext with
    /// the workers' socket options. Returns two figures per connection: accept → fd received by the reader thread
    /// (the handoff itself), and accept → ConnectionContext created (adds the worker's Socket for the fd, built from
    /// the address accept4 returned as the product does, and Kestrel's own Create).
    /// </summary>
    public static async Task<(double[] FdReceived, double[] ContextCreated)> AcceptToContextMicrosecondsAsync(int connections)
    {
        var (sender, receiver, directory) = await SeqPacketPairAsync();
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.NoDelay = true; // as the primary sets it: once, on the listening socket
        listener.Listen();
        var options = KestrelCluster.Worker.WorkerSocketOptions.Create(new SocketTransportOptions(), workerCount: 2, NullLogger.Instance);
        using var factory = new SocketConnectionContextFactory(options, NullLogger.Instance);
        var latencies = new double[connections];
        var received = new double[connections];
        var queue = Channel.CreateUnbounded<(int Fd, HandoffEntry Entry)>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
        using var created = new SemaphoreSlim(0);

        // The workers' own read loop (poll, then recvmsg until EAGAIN) on a thread of its own.
        var buffer = new byte[ControlFrames.MaxFrameLength + 1];
        var fds = new int[Libc.MaxFdsPerMessage];
        var entries = new HandoffEntry[Libc.MaxFdsPerMessage];
        var count = 0;
        _ = ControlChannelThread.Start("bench reader", () =>
        {
            ControlChannelThread.ReadMessages(receiver, buffer, fds, "closed", (length, fdCount, _) =>
            {
                if (!ControlFrames.TryReadHandoff(buffer.AsSpan(0, length), fdCount, entries))
                {
                    return "malformed handoff frame";
                }

                for (var i = 0; i < fdCount; i++)
                {
                    received[count++] = Stopwatch.GetElapsedTime(entries[i].AcceptedAt).TotalMicroseconds;
                    queue.Writer.TryWrite((fds[i], entries[i]));
                }

                return null;
            });
            queue.Writer.TryComplete();
        });

        var accepting = Task.Run(async () =>
        {
            for (var i = 0; i < connections; i++)
            {
                var (fd, entry) = await queue.Reader.ReadAsync();
                var socket = KestrelCluster.Worker.HandedOffSocket.Create(new SafeSocketHandle(fd, ownsHandle: true), entry.Peer, listener.LocalEndPoint!);
                var connection = factory.Create(socket);
                latencies[i] = Stopwatch.GetElapsedTime(entry.AcceptedAt).TotalMicroseconds;
                created.Release();
                await connection.DisposeAsync();
            }
        });

        var frame = new byte[ControlFrames.HandoffLength];
        try
        {
            for (var i = 0; i < connections; i++)
            {
                using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await client.ConnectAsync(listener.LocalEndPoint!);
                var accepted = Libc.Accept(listener.SafeHandle, out var peer);
                var acceptedAt = Stopwatch.GetTimestamp();
                ControlFrames.WriteHandoff(frame, new HandoffEntry(1, i, acceptedAt, peer));
                Libc.SendMessage(sender.SafeHandle, frame, [accepted]);
                Libc.CloseDescriptor(accepted); // the "worker" has its own copy now, as after the primary's ack

                // One at a time: wait until the "worker" has created this connection before the next accept.
                if (!await created.WaitAsync(TimeSpan.FromSeconds(10)))
                {
                    throw new TimeoutException($"Connection {i} never became a ConnectionContext.");
                }
            }

            await accepting;
            return (received, latencies);
        }
        finally
        {
            sender.Dispose();
            receiver.Shutdown(SocketShutdown.Both);
            receiver.Dispose();
            Directory.Delete(directory, recursive: true);
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
