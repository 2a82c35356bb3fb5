// The writer's own thread, started the first time a frame has to wait: it waits in poll() until the peer's queue
// takes more, sends what waits in order, skips messages cancelled meanwhile, and tells the owner when the socket is
// writable again (NotifyWhenWritable). A failed send other than EAGAIN breaks the channel.
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal sealed partial class ControlChannelWriter
{
    private void WakeWriter()
    {
        _work.Set();
        if (_thread is null)
        {
            _thread = new Thread(WriteLoop) { IsBackground = true, Name = _name };
            _thread.Start();
        }
    }

    private void Break(int errno)
    {
        Dispose();
        _onBroken(errno);
    }

    private void WriteLoop()
    {
        while (true)
        {
            _work.Wait();
            Pending? head;
            bool notify;
            lock (_lock)
            {
                if (_closed)
                {
                    return;
                }

                head = _queue.Count > 0 ? _queue.Peek() : null;
                notify = head is null && _writableWanted;
                if (head is null && !notify)
                {
                    _work.Reset();
                    continue;
                }
            }

            if (!WaitWritable())
            {
                continue; // closed meanwhile, or not yet writable: look again
            }

            if (notify)
            {
                lock (_lock)
                {
                    _writableWanted = false;
                }

                _onWritable?.Invoke();
                continue;
            }

            int errno;
            lock (_lock)
            {
                if (_closed || _queue.Count == 0 || _queue.Peek() != head)
                {
                    continue;
                }

                if (head!.IsCancelled)
                {
                    Dequeue();
                    continue;
                }

                errno = Send(head.Frame, head.Fd);
                if (errno == 0)
                {
                    Dequeue();
                    head.Complete();
                }
            }

            if (errno is not 0 and not Libc.EAGAIN)
            {
                Break(errno);
                return;
            }
        }
    }

    private bool WaitWritable()
    {
        try
        {
            return _socket.Poll(s_pollSlice, SelectMode.SelectWrite);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException)
        {
            Dispose();
            return false;
        }
    }

    private void Dequeue()
    {
        var pending = _queue.Dequeue();
        if (pending.Message is not null)
        {
            _queuedMessageBytes -= pending.Frame.Length;
        }
    }
}
