// The sending side of one control channel (either end), which never blocks its caller. A frame goes out at once,
// with a non-blocking sendmsg, when nothing is queued before it; when the peer's receive queue is full (EAGAIN) it
// waits, in order, in this writer's queue, and a thread of the writer's own sends it once poll() says the socket
// takes more. So a reader thread that answers, relays or acknowledges never waits for a slow peer.
//
// Two kinds of frame: control frames (acks, heartbeats, registration, stop) are queued; they are small and as many as
// the traffic that caused them, and a peer that leaves MaxQueuedFrames of them unread is broken: the channel closes
// (logged; the worker is replaced, or a worker without its primary stops). Cluster messages, which an app may send
// faster than a peer reads, are bounded (MaxQueuedMessageBytes): past it a message is refused with an error.
// Nothing is dropped silently.
//
// Lock order: a channel's own lock, then this writer's lock. Callbacks (onWritable, onBroken) run without it.
using System.Net.Sockets;
using System.Runtime.InteropServices;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal sealed partial class ControlChannelWriter : IDisposable
{
    /// <summary>Bytes of cluster messages that may wait for one peer; a message past it is refused.</summary>
    public const int MaxQueuedMessageBytes = 4 * 1024 * 1024;

    /// <summary>Frames of any kind left unread by the peer after which the channel counts as broken and closes.</summary>
    public const int MaxQueuedFrames = 16 * 1024;

    private static readonly TimeSpan s_pollSlice = TimeSpan.FromMilliseconds(500);

    private readonly Socket _socket;
    private readonly string _name;
    private readonly Action? _onWritable;
    private readonly Action<int> _onBroken;
    private readonly Lock _lock = new();
    private readonly Queue<Pending> _queue = new();
    private readonly ManualResetEventSlim _work = new();
    private Thread? _thread;
    private int _queuedMessageBytes;
    private bool _writableWanted;
    private bool _closed;

    /// <param name="socket">The connected control socket (SOCK_SEQPACKET).</param>
    /// <param name="name">The writer thread's name.</param>
    /// <param name="onBroken">Called once, with the errno, when a send fails for good (the peer is gone).</param>
    /// <param name="onWritable">Called after <see cref="NotifyWhenWritable"/>, once the socket takes more again.</param>
    public ControlChannelWriter(Socket socket, string name, Action<int> onBroken, Action? onWritable = null)
    {
        _socket = socket;
        _name = name;
        _onBroken = onBroken;
        _onWritable = onWritable;
    }

    /// <summary>Frames waiting for the peer to read (tests and status).</summary>
    public int QueuedCount
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Sends a control frame now, or queues it behind the ones waiting. False once the channel is closed.</summary>
    public bool TrySend(ReadOnlySpan<byte> frame) => Enqueue(frame, fdOwner: null, message: null);

    /// <summary>
    /// As <see cref="TrySend(ReadOnlySpan{byte})"/>, with the fd of <paramref name="fdOwner"/> attached. Sent now, the handle
    /// is referenced for the sendmsg; queued, the frame takes a duplicate of the fd (F_DUPFD_CLOEXEC): its number is never
    /// used after the owner closes it, and the owner's Dispose never waits for a peer that does not read.
    /// </summary>
    public bool TrySend(ReadOnlySpan<byte> frame, SafeHandle fdOwner) => Enqueue(frame, fdOwner, message: null);

    /// <summary>
    /// Sends a cluster message; completes once the kernel has it. Refused (<see cref="InvalidOperationException"/>)
    /// when the channel is closed or <see cref="MaxQueuedMessageBytes"/> already wait; a cancelled wait removes it.
    /// </summary>
    public Task SendMessageAsync(ReadOnlySpan<byte> frame, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        var message = new PendingMessage(cancellationToken);
        if (!Enqueue(frame, fdOwner: null, message))
        {
            return Task.FromException(new InvalidOperationException(message.RefusedBecause));
        }

        message.RegisterCancellation(this);
        return message.Task;
    }

    /// <summary>
    /// Asks for <c>onWritable</c> once the socket can take more (a handoff got EAGAIN): the sender then knows when to
    /// try again, whatever filled the peer's queue, without waiting for anything the peer might never send.
    /// </summary>
    public void NotifyWhenWritable()
    {
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }

            _writableWanted = true;
            WakeWriter();
        }
    }

    /// <summary>Stops the writer: waiting frames are dropped with the channel, waiting messages fail.</summary>
    public void Dispose()
    {
        Pending[] dropped;
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            dropped = [.. _queue];
            _queue.Clear();
            _queuedMessageBytes = 0;
            _work.Set();
        }

        foreach (var pending in dropped)
        {
            pending.Abandon("the control channel closed before it was sent");
        }
    }

    private bool Enqueue(ReadOnlySpan<byte> frame, SafeHandle? fdOwner, PendingMessage? message)
    {
        lock (_lock)
        {
            if (_closed)
            {
                if (message is not null)
                {
                    message.RefusedBecause = "The control channel is closed: the peer process is gone or going.";
                }

                return false;
            }

            if (message is not null && _queuedMessageBytes + frame.Length > MaxQueuedMessageBytes)
            {
                message.RefusedBecause =
                    $"The peer is not reading its control channel: {_queuedMessageBytes} bytes of messages already wait for it (at " +
                        $"most {MaxQueuedMessageBytes}). The message was not sent.";
                return false;
            }

            if (_queue.Count == 0)
            {
                var errno = SendNow(frame, fdOwner);
                if (errno == 0)
                {
                    message?.TrySetSent();
                    return true;
                }

                if (errno != Libc.EAGAIN)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static s => s.Writer.Break(s.Errno), (Writer: this, Errno: errno),
                        preferLocal: false);
                    if (message is not null)
                    {
                        message.RefusedBecause = $"Sending on the control channel failed (errno {errno}): the peer is gone.";
                    }

                    return false;
                }
            }

            if (_queue.Count >= MaxQueuedFrames)
            {
                // The peer has read nothing for thousands of frames: it is hung. A closed channel is what the rest of
                // the cluster knows how to handle; an ever-growing queue is not.
                ThreadPool.UnsafeQueueUserWorkItem(static w => w.Break(Libc.ENOBUFS), this, preferLocal: false);
                if (message is not null)
                {
                    message.RefusedBecause = $"The peer left {MaxQueuedFrames} frames unread: its control channel is closed.";
                }

                return false;
            }

            var fd = -1;
            if (fdOwner is not null && (fd = Libc.Duplicate(fdOwner)) < 0)
            {
                return false; // the fd's owner closed it (a listener unbound at shutdown), or no fd is left: nothing to send
            }

            var pending = new Pending(frame.ToArray(), fd, message);

            _queue.Enqueue(pending);
            if (message is not null)
            {
                _queuedMessageBytes += frame.Length;
            }

            WakeWriter();
            return true;
        }
    }

    private int Send(ReadOnlySpan<byte> frame, int fd) =>
        fd < 0 ? Libc.SendMessage(_socket.SafeHandle, frame, []) : Libc.SendMessage(_socket.SafeHandle, frame, [fd]);

    private int SendNow(ReadOnlySpan<byte> frame, SafeHandle? fdOwner)
    {
        if (fdOwner is null)
        {
            return Libc.SendMessage(_socket.SafeHandle, frame, []);
        }

        var added = false;
        try
        {
            fdOwner.DangerousAddRef(ref added);
            return Libc.SendMessage(_socket.SafeHandle, frame, [(int)fdOwner.DangerousGetHandle()]);
        }
        catch (ObjectDisposedException)
        {
            return Libc.EBADF; // the fd is gone: this frame can never be sent as meant
        }
        finally
        {
            if (added)
            {
                fdOwner.DangerousRelease();
            }
        }
    }
}
