// The primary's end of one worker's control channel: sends it accepted sockets (SCM_RIGHTS), keeps each one
// until the worker acknowledges it, and reads what the worker says. Anything malformed drops the channel
// (the supervisor then replaces the worker); it never takes the primary down.
using System.Diagnostics;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed class WorkerChannel : Messaging.IMessageLink, ISchedulableWorker, IDisposable
{
    /// <summary>
    /// How long a worker keeps running, after its last new connection, before it is told to stop (retired, or the
    /// whole cluster stopping): time for that connection's first request to arrive, which Kestrel's graceful stop
    /// would otherwise not wait for (it closes a connection with no request under way, unanswered).
    /// </summary>
    public static readonly TimeSpan FirstRequestGrace = TimeSpan.FromSeconds(1);

    private static long s_nextHandoffId;

    private readonly Socket _socket;
    private readonly HandoffDispatcher _dispatcher;
    private readonly PrimaryListenerTable _listeners;
    private readonly ILogger _logger;
    private readonly int _maxInFlight;
    private readonly Messaging.ClusterMessenger? _messenger;
    private readonly ControlChannelWriter _writer;
    private readonly Lock _lock = new(); // _inFlight, _outbox, _isClosed; taken after the dispatcher's, before the writer's
    private readonly Dictionary<long, AcceptedConnection> _inFlight = [];
    private readonly List<AcceptedConnection> _outbox = []; // routed here, not sent yet (HandoffDispatcher.Flush)
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile int[] _listenerIds = [];
    private volatile bool _ready;
    private volatile bool _saturated;
    private long _lastHandoffAt;
    private volatile bool _isClosed;
    private volatile bool _draining;
    private long _handedOff;
    private long _closedConnections;

    public WorkerChannel(WorkerProcess worker, Socket socket, HandoffDispatcher dispatcher, PrimaryListenerTable listeners,
        int maxInFlight, ILogger logger,
        Messaging.ClusterMessenger? messenger = null)
    {
        _messenger = messenger;
        Worker = worker;
        _socket = socket;
        _dispatcher = dispatcher;
        _listeners = listeners;
        _maxInFlight = maxInFlight;
        _logger = logger;
        Candidate = new WorkerCandidate(this);
        _writer = new ControlChannelWriter(socket, $"KC writer w{worker.Id}",
            errno => Close($"sending on the control channel failed (errno {errno})"), OnWritable);
    }

    public WorkerProcess Worker { get; }

    public int WorkerId => Worker.Id;

    public int SlotIndex => Worker.Slot;

    /// <summary>This worker as schedulers see it.</summary>
    public WorkerCandidate Candidate { get; }

    /// <summary>Connections the worker accepted and has not reported closed.</summary>
    public long OpenConnections => HandedOff - Interlocked.Read(ref _closedConnections);

    public bool IsReady => _ready && !_isClosed && !_draining;

    /// <summary>Completes when the channel is closed, for whatever reason, and what it held is routed elsewhere.</summary>
    public Task Closed => _closed.Task;

    /// <summary>Connections handed to this worker and acknowledged by it.</summary>
    public long HandedOff => Interlocked.Read(ref _handedOff);

    /// <summary>Raised once, when the worker reports that its app has started.</summary>
    public event Action<WorkerChannel>? BecameReady;

    public int InFlightCount
    {
        get
        {
            lock (_lock)
            {
                return _inFlight.Count + _outbox.Count;
            }
        }
    }

    /// <summary>Control frames and messages waiting for the worker to read (its receive queue is full).</summary>
    public int QueuedFrames => _writer.QueuedCount;

    /// <summary>Lock-free check for the scheduler: ready, serving this listener, and not at its in-flight limit.</summary>
    public bool CanTake(int listenerId) =>
        _ready && !_isClosed && !_draining && !_saturated && _inFlight.Count + _outbox.Count < _maxInFlight
            && Array.IndexOf(_listenerIds, listenerId) >= 0;

    /// <summary>Routes a connection here; it counts as in flight at once and leaves with <see cref="SendOutbox"/>.</summary>
    public void AddToOutbox(AcceptedConnection connection)
    {
        lock (_lock)
        {
            _outbox.Add(connection);
        }
    }

    /// <summary>
    /// Sends the connections routed here, all in one message (several fds in one sendmsg). The primary keeps its
    /// copies until the worker acknowledges them: a worker that dies with fds queued to it destroys its copies, and
    /// its clients would get a reset; the primary's copies go to another worker instead. What the worker cannot take
    /// now (its queue is full, or it is gone) goes back to the dispatcher. Handoffs are sent here, on the thread
    /// that routed them, not through the writer's queue: they are not ordered with control frames.
    /// </summary>
    public void SendOutbox()
    {
        List<AcceptedConnection>? refused = null;
        var errno = 0;
        lock (_lock)
        {
            // Usually one message; more when concurrent flushes routed more than one message holds.
            while (_outbox.Count > 0 && !_isClosed)
            {
                errno = SendFirst(Math.Min(_outbox.Count, ControlFrames.MaxFdsPerMessage));
                if (errno == Libc.EAGAIN)
                {
                    // The worker's receive queue is full (of connections, or of messages): no more until it can take
                    // more. An ack says so, and so does the socket turning writable: whatever filled it, this worker is
                    // offered connections again as soon as it can take them.
                    _saturated = true;
                    refused = [.. _outbox];
                    _outbox.Clear();
                    _writer.NotifyWhenWritable();
                }
                else if (errno != 0)
                {
                    break; // the channel is broken: Close hands the outbox back with the rest
                }
            }
        }

        if (refused is not null)
        {
            _dispatcher.Redispatch(refused);
        }
        else if (errno != 0)
        {
            Close($"sending connections failed (errno {errno})");
        }
    }

    /// <summary>Sends the first <paramref name="count"/> connections of the outbox in one message. Under the lock.</summary>
    private int SendFirst(int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (!_outbox[i].TryAddRef())
            {
                _outbox.RemoveAt(i--); // closed meanwhile (the primary is stopping): nothing left to hand over
                count = Math.Min(count, _outbox.Count);
            }
        }

        if (count == 0)
        {
            return 0;
        }

        Span<byte> frame = stackalloc byte[ControlFrames.HandoffLength(count)];
        Span<int> fds = stackalloc int[count];
        var firstId = Interlocked.Add(ref s_nextHandoffId, count) - count + 1;
        for (var i = 0; i < count; i++)
        {
            var connection = _outbox[i];
            fds[i] = connection.Fd;
            ControlFrames.WriteHandoffEntry(frame, i, new HandoffEntry(connection.Listener.Id, firstId + i, connection.AcceptedAt,
                connection.Peer));
        }

        var errno = Libc.SendMessage(_socket.SafeHandle, frame, fds);
        for (var i = 0; i < count; i++)
        {
            _outbox[i].Release(); // no fd is used after this point without a new reference
        }

        if (errno == 0)
        {
            for (var i = 0; i < count; i++)
            {
                _inFlight.Add(firstId + i, _outbox[i]);
            }

            _outbox.RemoveRange(0, count);
            _lastHandoffAt = Stopwatch.GetTimestamp();
        }

        return errno;
    }

    /// <summary>
    /// Completes once the last connection handed to this worker is <paramref name="grace"/> old. Kestrel's graceful stop
    /// closes, unanswered, a connection whose first request has not arrived yet; for a connection handed over a moment
    /// before the stop, that would be a client's request lost. Called after <see cref="StopRouting"/>.
    /// </summary>
    public Task WaitForLastHandoffAsync(TimeSpan grace)
    {
        long last;
        lock (_lock)
        {
            // Connections routed here before StopRouting and not sent yet count as handed over now.
            last = _outbox.Count > 0 ? Stopwatch.GetTimestamp() : _lastHandoffAt;
        }

        var remaining = last == 0 ? TimeSpan.Zero : grace - Stopwatch.GetElapsedTime(last);
        return remaining > TimeSpan.Zero ? Task.Delay(remaining) : Task.CompletedTask;
    }

    /// <summary>No new connections for this worker (it is being retired); what it holds stays with it.</summary>
    public void StopRouting()
    {
        _draining = true;
        _dispatcher.RemoveReady(this);
    }

    /// <summary>Sends a control frame, now or (the worker's queue is full) in order from the writer's queue; never blocks.</summary>
    public bool TrySendControl(ReadOnlySpan<byte> frame) => _writer.TrySend(frame);

    /// <summary>Sends a control frame with the fd of <paramref name="fdOwner"/>, referenced until it is sent.</summary>
    public bool TrySendControl(ReadOnlySpan<byte> frame, System.Runtime.InteropServices.SafeHandle? fdOwner) =>
        fdOwner is null ? _writer.TrySend(frame) : _writer.TrySend(frame, fdOwner);

    /// <summary>Sends a cluster message; refused with an error when the worker is gone or not reading (see the writer).</summary>
    public Task SendMessageAsync(ReadOnlySpan<byte> frame, CancellationToken cancellationToken) =>
        _writer.SendMessageAsync(frame, cancellationToken);

    /// <summary>The socket takes more again after a handoff got EAGAIN: offer this worker to the scheduler again.</summary>
    private void OnWritable()
    {
        _saturated = false;
        _dispatcher.Flush();
    }

    /// <summary>
    /// Reads the worker's frames, on a thread of its own, until the channel closes or the worker breaks the protocol;
    /// the task completes when the channel is closed.
    /// </summary>
    public Task RunAsync()
    {
        _ = ControlChannelThread.Start($"KC channel w{Worker.Id}", ReadLoop);
        return Closed;
    }

    private void ReadLoop()
    {
        var buffer = new byte[ControlFrames.MaxFrameLength + 1];
        // No room for fds: a worker never sends any; any it sends are closed on receipt (truncated) and drop it.
        var reason = ControlChannelThread.ReadMessages(_socket, buffer, [], "the worker closed its control channel", (length, _,
            truncated) =>
        {
            if (truncated || length > ControlFrames.MaxFrameLength || !Handle(buffer.AsSpan(0, length)))
            {
                PrimaryLog.ProtocolViolation(_logger, Worker.Id, buffer[0], length);
                return $"protocol violation: malformed or unexpected frame (type {buffer[0]}, {length} bytes)";
            }

            return null;
        });
        Close(reason);
    }

    /// <summary>
    /// Closes the channel: stops routing here and routes every connection the worker had not acknowledged to
    /// another worker (a worker that dies destroys the fds queued to it; the primary's copies survive).
    /// </summary>
    public void Close(string reason)
    {
        List<AcceptedConnection> unacknowledged;
        lock (_lock)
        {
            if (_isClosed)
            {
                return;
            }

            _isClosed = true;
            unacknowledged = [.. _inFlight.Values, .. _outbox];
            _inFlight.Clear();
            _outbox.Clear();
        }

        _writer.Dispose();
        Libc.Shutdown(_socket.SafeHandle); // wakes the reader thread if it waits in poll()
        _socket.Dispose();
        _dispatcher.RemoveReady(this);
        if (unacknowledged.Count > 0)
        {
            PrimaryLog.ChannelClosedWithConnections(_logger, Worker.Id, reason, unacknowledged.Count);
        }
        else
        {
            PrimaryLog.ChannelClosed(_logger, Worker.Id, reason);
        }

        // Routed elsewhere before Closed completes: whoever waits for it sees the connections already back in the
        // dispatcher (or with another worker), never in between.
        if (unacknowledged.Count > 0)
        {
            _dispatcher.Redispatch(unacknowledged);
        }

        _closed.TrySetResult();
    }

    private bool Handle(ReadOnlySpan<byte> frame)
    {
        switch ((FrameType)frame[0])
        {
            case FrameType.Ack when ControlFrames.ReadAckCount(frame, out var closedSinceReport) is > 0 and var count:
                for (var i = 0; i < count; i++)
                {
                    if (!ControlFrames.TryReadAck(frame, i, out var handoffId, out var accepted) || !OnAck(handoffId, accepted))
                    {
                        return false;
                    }
                }

                // After the acks: a connection acknowledged and closed since the last frame is counted in, then out.
                Interlocked.Add(ref _closedConnections, closedSinceReport);

                // Room for more, once for the whole frame: what waited goes out together.
                _dispatcher.Flush();
                return true;

            case FrameType.Register when ControlFrames.TryReadRegister(frame, out var requestId, out var endpoint):
                var listener = _listeners.Match(endpoint!, new HashSet<int>(_listenerIds));
                if (listener is null)
                {
                    PrimaryLog.RegisterUnmatched(_logger, Worker.Id, endpoint!);
                    return TrySendControl(ControlFrames.Registered(requestId, -1,
                        $"The primary has no listener for {endpoint}. Workers bind the endpoints the primary bound; configure " +
                            $"endpoints in the app or its configuration (which workers share), not only in the test or host that " +
                            $"starts the primary."));
                }

                _listenerIds = [.. _listenerIds, listener.Id];
                PrimaryLog.ListenerRegistered(_logger, Worker.Id, listener.Id, listener.EndPoint);
                // In shared mode the worker gets the listening socket itself and accepts on it (Node's SCHED_NONE).
                return TrySendControl(ControlFrames.Registered(requestId, listener.Id, EndpointText.Format(listener.EndPoint)),
                    listener.SharedListeningSocket);

            case FrameType.Unregister when ControlFrames.TryReadUnregister(frame, out var listenerId):
                _listenerIds = [.. _listenerIds.Where(id => id != listenerId)];
                return true;

            case FrameType.Message when _messenger is not null && ControlFrames.TryReadMessage(frame, out var broadcast,
                out var from, out var payload) && from == Worker.Id:
                _messenger.OnFrame(Worker.Id, broadcast, payload.ToArray());
                return true;

            case FrameType.ConnectionsClosed when ControlFrames.TryReadConnectionsClosed(frame, out var closed):
                Interlocked.Add(ref _closedConnections, closed);
                return true;

            case FrameType.Heartbeat when ControlFrames.TryReadHeartbeat(frame, out var heartbeat):
                Worker.OnHeartbeat(heartbeat);
                return true;

            case FrameType.Ready when frame.Length == 1 && !_ready:
                _ready = true;
                BecameReady?.Invoke(this);
                if (!_draining)
                {
                    _dispatcher.AddReady(this);
                }
                return true;

            default:
                return false;
        }
    }

    private bool OnAck(long handoffId, bool accepted)
    {
        AcceptedConnection? connection;
        lock (_lock)
        {
            if (!_inFlight.Remove(handoffId, out connection))
            {
                return false; // an ack for something never sent to this worker
            }

            _saturated = false;
        }

        if (accepted)
        {
            Interlocked.Increment(ref _handedOff);

            // The worker owns the connection now. Closing our copy matters: kept, it leaks an fd per connection
            // and a dying worker's clients would get neither FIN nor RST (the primary's copy keeps it open).
            connection.Close();
        }
        else
        {
            _dispatcher.Redispatch([connection]);
        }

        return true;
    }

    public void Dispose() => Close("the primary disposed it");

    public override string ToString() => $"worker {Worker.Id}";
}
