// Both ends of a control channel read it on a thread of their own that waits in poll() and drains with
// non-blocking recvmsg. An async receive would cost, for every message, a wake-up of the runtime's epoll thread and
// then a hop to the thread pool, whose idle workers spin before they sleep: on a few cores shared by the primary,
// the workers and the clients, those wake-ups were most of the primary's CPU per connection.
using System.Net.Sockets;

namespace KestrelCluster.Protocol;

internal static class ControlChannelThread
{
    /// <summary>
    /// Runs <paramref name="readLoop"/> on a new background thread; the task completes when it returns. The loop must
    /// not throw: an exception on a thread of its own would end the process.
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
    /// Blocks until <paramref name="socket"/> has a message (or its end: the peer closed it, or this side shut it
    /// down to stop the reader). Throws ObjectDisposedException once the socket is disposed.
    /// </summary>
    public static void WaitReadable(Socket socket) => socket.Poll(-1, SelectMode.SelectRead);
}
