// Both ends of a control channel read it on a thread of their own that waits in poll() and drains with
// non-blocking recvmsg. An async receive would cost, for every message, a wake-up of the runtime's epoll thread and
// then a hop to the thread pool, whose idle workers spin before they sleep: on a few cores shared by the primary,
// the workers and the clients, those wake-ups were most of the primary's CPU per connection.
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal static class ControlChannelThread
{
    /// <summary>
    /// Runs <paramref name="readLoop"/> on a new background thread; the task completes when it returns. The loop must
    /// not throw (an exception on a thread of its own would end the process): ReadMessages does not.
    /// </summary>
    public static Task Start(string name, Action readLoop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                readLoop();
            }
            finally
            {
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>
    /// The read loop of either end: waits in poll() until <paramref name="socket"/> is readable, then receives every
    /// queued message (and its fds) into <paramref name="buffer"/> and <paramref name="fds"/> and passes each to
    /// <paramref name="onMessage"/> (length, fd count, truncated), which returns null to go on or the reason to stop
    /// (a protocol violation; it closes whatever fds it holds). Returns why the loop ended; never throws. Fds the kernel
    /// could not install (MSG_CTRUNC) count as truncation here.
    /// </summary>
    public static string ReadMessages(Socket socket, byte[] buffer, int[] fds, string peerClosedReason, Func<int, int, bool,
        string?> onMessage) =>
        ReadMessages(socket, buffer, fds, peerClosedReason, (length, fdCount, truncated, descriptorsLost) =>
            onMessage(length, fdCount, truncated || descriptorsLost));

    /// <summary>
    /// <see cref="ReadMessages(Socket, byte[], int[], string, Func{int, int, bool, string?})"/> for a reader that copes
    /// with fds lost on the way (MSG_CTRUNC at its open-files limit): <paramref name="onMessage"/> gets length, fd count,
    /// truncated (a protocol violation) and descriptors lost.
    /// </summary>
    public static string ReadMessages(Socket socket, byte[] buffer, int[] fds, string peerClosedReason,
        Func<int, int, bool, bool, string?> onMessage)
    {
        try
        {
            while (true)
            {
                // Readable also means the peer closed the channel, or this side shut it down to stop the reader.
                socket.Poll(-1, SelectMode.SelectRead);
                while (true)
                {
                    var errno = Libc.ReceiveMessage(socket.SafeHandle, buffer, fds, out var length, out var fdCount, out var truncated,
                        out var descriptorsLost);
                    if (errno == Libc.EAGAIN)
                    {
                        break;
                    }

                    if (errno != 0)
                    {
                        return $"receiving failed (errno {errno})";
                    }

                    if (length == 0 && fdCount == 0 && !truncated && !descriptorsLost)
                    {
                        return peerClosedReason;
                    }

                    if (onMessage(length, fdCount, truncated, descriptorsLost) is { } violation)
                    {
                        return violation;
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return peerClosedReason; // disposed by this side, on the way out
        }
        catch (SocketException e)
        {
            return $"control channel error {e.SocketErrorCode}";
        }
#pragma warning disable CA1031 // a reader thread must not end the process: whatever happened ends this channel only
        catch (Exception e)
#pragma warning restore CA1031
        {
            return $"internal error reading the control channel: {e.Message}";
        }
    }
}
