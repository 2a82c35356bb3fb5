// One end of the upgrade socket between two primaries (UpgradeProtocol): whole frames with their fds, sent and received
// with a deadline. A handful of frames per upgrade, so plain blocking calls on a thread of the caller's, no pipeline.
// Exceptions say what the other primary did, to follow its name in a log line ("the new primary (pid 200) hung up …").
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal sealed class UpgradeChannel(Socket socket) : IDisposable
{
    private readonly byte[] _buffer = new byte[ControlFrames.MaxFrameLength];
    private readonly int[] _fds = new int[ControlFrames.MaxFdsPerMessage];

    public Socket Socket { get; } = socket;

    /// <summary>Connects to an upgrade socket.</summary>
    public static UpgradeChannel Connect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return new UpgradeChannel(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one frame with <paramref name="fds"/> attached; waits for room until <paramref name="timeout"/>.</summary>
    public void Send(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds, TimeSpan timeout)
    {
        var deadline = Deadline(timeout);
        while (true)
        {
            var errno = Libc.SendMessage(Socket.SafeHandle, frame, fds);
            if (errno == 0)
            {
                return;
            }

            if (errno != Libc.EAGAIN)
            {
                throw new IOException($"hung up (errno {errno} on send)");
            }

            if (!Socket.Poll(Remaining(deadline), SelectMode.SelectWrite))
            {
                throw new TimeoutException($"took no frame for {timeout}");
            }
        }
    }

    public void Send(ReadOnlySpan<byte> frame, TimeSpan timeout) => Send(frame, [], timeout);

    /// <summary>
    /// Receives one frame and the fds that came with it (owned by the caller from now on); null when the other primary
    /// hung up. Throws <see cref="TimeoutException"/> when nothing came before <paramref name="timeout"/> (infinite: -1 ms),
    /// and <see cref="InvalidDataException"/> for a truncated frame (its fds closed).
    /// </summary>
    public (byte[] Frame, int[] Fds)? Receive(TimeSpan timeout)
    {
        var deadline = Deadline(timeout);
        while (true)
        {
            var errno = Libc.ReceiveMessage(Socket.SafeHandle, _buffer, _fds, out var length, out var fdCount, out var truncated);
            if (errno == 0)
            {
                var fds = _fds[..fdCount];
                if (truncated)
                {
                    Array.ForEach(fds, Libc.CloseDescriptor);
                    throw new InvalidDataException("sent a frame that did not fit (a protocol violation)");
                }

                return length == 0 && fdCount == 0 ? null : (_buffer[..length], fds);
            }

            if (errno != Libc.EAGAIN)
            {
                throw new IOException($"hung up (errno {errno} on receive)");
            }

            if (!Socket.Poll(Remaining(deadline), SelectMode.SelectRead))
            {
                throw new TimeoutException("did not answer in time");
            }
        }
    }

    public void Dispose() => Socket.Dispose();

    private static long Deadline(TimeSpan timeout) =>
        timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;

    /// <summary>Microseconds left, as Socket.Poll takes them (-1: wait forever).</summary>
    private static int Remaining(long deadline) => deadline == long.MaxValue
        ? -1
        : (int)Math.Clamp((deadline - Environment.TickCount64) * 1000, 0, int.MaxValue);
}
