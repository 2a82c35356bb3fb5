// Handoff micro-benchmarks, no HTTP: how many fds per second SCM_RIGHTS moves over the control channel's
// socket type (one per message, and batched), and the latency from "accepted" to "ConnectionContext created"
// on the receiving side, measured with monotonic timestamps.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
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

    /// <summary>Microseconds from accept (in the "primary") to a started ConnectionContext (in the "worker"), per connection.</summary>
    public static async Task<double[]> AcceptToContextMicrosecondsAsync(int connections)
    {
        var (sender, receiver, directory) = await SeqPacketPairAsync();
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var factory = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions { IOQueueCount = 1 }, NullLogger.Instance);
        var latencies = new double[connections];
        var frame = new byte[1 + 8];
        var buffer = new byte[64];
        var received = new int[Libc.MaxFdsPerMessage];
        try
        {
            for (var i = 0; i < connections; i++)
            {
                using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await client.ConnectAsync(listener.LocalEndPoint!);
                using var accepted = await listener.AcceptAsync();
                accepted.NoDelay = true;
                var acceptedAt = Stopwatch.GetTimestamp();

                // Primary side: send the fd, as WorkerChannel.TrySend does.
                Libc.SendMessage(sender.SafeHandle, frame, [(int)accepted.SafeHandle.DangerousGetHandle()]);

                // Worker side: wait for readability without a thread, recvmsg, wrap, create the Kestrel connection.
                await receiver.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
                Libc.ReceiveMessage(receiver.SafeHandle, buffer, received, out _, out var fdCount, out _);
                var socket = new Socket(new SafeSocketHandle(received[0], ownsHandle: true));
                var connection = factory.Create(socket);
                latencies[i] = Stopwatch.GetElapsedTime(acceptedAt).TotalMicroseconds;
                await connection.DisposeAsync();
            }

            return latencies;
        }
        finally
        {
            sender.Dispose();
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
