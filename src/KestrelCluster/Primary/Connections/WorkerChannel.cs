// The primary's end of one worker's control channel: sends it accepted sockets (SCM_RIGHTS), keeps each one
// until the worker acknowledges it, and hands back what it held when the channel closes. What the worker says is
// read by WorkerFrameReader; anything malformed drops the channel (the supervisor then replaces the worker), never
// the primary.
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal sealed partial class WorkerChannel : Messaging.IMessageLink, IDisposable
{
    /// <summary>
    /// How long a worker keeps running, after its last new connection, before it is told to stop (retired, or the
    /// whole cluster stopping): time for that connection's first request to arrive, which Kestrel's graceful stop
    /// would otherwise not wait for (it closes a connection with no request under way, unanswered).
    /// </summary>
    public static readonly TimeSpan FirstRequestGrace = TimeSpan.FromSeconds(1);

    private int _warmUpEnded; // 1 once told to end its warm-up
    private readonly Socket _socket;
    private readonly HandoffDispatcher _dispatcher;
    private readonly PrimaryListenerTable _listeners;
    private readonly ILogger _logger;
    private readonly int _maxInFlight;
    private readonly Messaging.ClusterMessenger? _messenger;
    private readonly ControlChannelWriter _writer;
    private readonly WorkerOutbox _outbox;
    private readonly Lock _lock = new(); // _isClosed; lock order: the dispatcher's, this, the outbox's, the writer's
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _ready;
    private volatile bool _saturated;
    private volatile bool _isClosed;
    private volatile bool _draining;
    private long _closedConnections;

    private readonly Func<byte[]>? _status;

    public WorkerChannel(int workerId, int slotIndex, Socket socket, HandoffDispatcher dispatcher, PrimaryListenerTable listeners,
        int maxInFlight, ILogger logger,
        Messaging.ClusterMessenger? messenger = null, Func<byte[]>? status = null)
    {
        _messenger = messenger;
        _status = status;
        WorkerId = workerId;
        SlotIndex = slotIndex;
        _socket = socket;
        _dispatcher = dispatcher;
        _listeners = listeners;
        _maxInFlight = maxInFlight;
        _logger = logger;
        _outbox = new WorkerOutbox(socket);
        _writer = new ControlChannelWriter(socket, $"KC writer w{workerId}",
            errno => Close($"sending on the control channel failed (errno {errno})"), OnWritable);
    }

    public int WorkerId { get; }

    public int SlotIndex { get; }

    /// <summary>This worker as schedulers see it, now.</summary>
    public WorkerCandidate Candidate => new(WorkerId, SlotIndex, InFlightCount, OpenConnections);

    /// <summary>Connections the worker accepted and has not reported closed.</summary>
    public long OpenConnections => HandedOff - Interlocked.Read(ref _closedConnections);

    public bool IsReady => _ready && !_isClosed && !_draining;

    /// <summary>Completes when the channel is closed, for whatever reason, and what it held is routed elsewhere.</summary>
    public Task Closed => _closed.Task;

    /// <summary>Connections handed to this worker and acknowledged by it.</summary>
    public long HandedOff => _outbox.HandedOff;

    /// <summary>Raised once, when the worker reports that its app has started.</summary>
    public event Action<WorkerChannel>? BecameReady;

    /// <summary>Raised for every heartbeat the worker sends (once a second), on the channel's reader.</summary>
    public event Action<WorkerHeartbeat>? HeartbeatReceived;

    public int InFlightCount => _outbox.Count;

    /// <summary>Control frames and messages waiting for the worker to read (its receive queue is full).</summary>
    public int QueuedFrames => _writer.QueuedCount;

    /// <summary>Lock-free check for the scheduler: ready, serving this listener, and not at its in-flight limit.</summary>
    public bool CanTake(int listenerId) =>
        _ready && !_isClosed && !_draining && !_saturated && _outbox.UnacknowledgedEstimate < _maxInFlight
            && Array.IndexOf(_listenerIds, listenerId) >= 0 && (_fdCeiling == long.MaxValue || HasFdRoom);

    /// <summary>Routes a connection here; it counts as in flight at once and leaves with <see cref="SendOutbox"/>.</summary>
    public void AddToOutbox(AcceptedConnection connection) => _outbox.Add(connection);

    /// <summary>
    /// Sends the connections routed here (see <see cref="WorkerOutbox"/>). What the worker cannot take now (its queue
    /// is full, or it is gone) goes back to the dispatcher. Handoffs are sent here, on the thread that routed them, not
    /// through the writer's queue: they are not ordered with control frames.
    /// </summary>
    public void SendOutbox()
    {
        var errno = _outbox.Send(out var refused);
        if (errno == Libc.EAGAIN)
        {
            // The worker's receive queue is full (of connections, or of messages): no more until it can take more.
            // An ack says so, and so does the socket turning writable: whatever filled it, this worker is offered
            // connections again as soon as it can take them.
            _saturated = true;
            _writer.NotifyWhenWritable();
            _dispatcher.Redispatch(refused!);
        }
        else if (errno != 0)
        {
            Close($"sending connections failed (errno {errno})"); // Close hands back what the worker had not acknowledged
        }
    }

    /// <summary>See <see cref="WorkerOutbox.WaitForLastHandoffAsync"/>; called after <see cref="StopRouting"/>.</summary>
    public Task WaitForLastHandoffAsync(TimeSpan grace) => _outbox.WaitForLastHandoffAsync(grace);

    /// <summary>No new connections for this worker (it is being retired); what it holds stays with it.</summary>
    public void StopRouting()
    {
        _draining = true;
        Serving(false);
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

    /// <summary>Answers a worker's status query with the cluster's status (in order with other control frames).</summary>
    public void AnswerStatusQuery(int requestId)
    {
        foreach (var frame in ControlFrames.StatusReply(requestId, _status?.Invoke() ?? "{}"u8.ToArray()))
        {
            if (!TrySendControl(frame))
            {
                return; // the channel is closing, or the worker reads nothing: it gets no answer and times out
            }
        }
    }

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
        new WorkerFrameReader(this, _socket, _listeners, _messenger, _logger).Start();
        return Closed;
    }

    /// <summary>
    /// Tells the worker, once, to end its warm-up and report ready (FrameType.EndWarmUp); false if it is ready already,
    /// retiring, gone, or was told before.
    /// </summary>
    public bool TryEndWarmUp() =>
        !_ready && !_isClosed && !_draining && Interlocked.Exchange(ref _warmUpEnded, 1) == 0 && TrySendControl(ControlFrames.EndWarmUp());

    /// <summary>The worker's app has started: it takes connections from now on, unless it is already being retired.</summary>
    public bool OnReady()
    {
        if (_ready)
        {
            return false; // said twice: a protocol violation
        }

        _ready = true;
        if (!_draining)
        {
            Serving(true); // first: whoever hears it is ready finds the primary no longer accepting on its slot's sockets
        }

        BecameReady?.Invoke(this);
        if (!_draining)
        {
            _dispatcher.AddReady(this);
        }

        return true;
    }

    /// <summary>An Ack frame: each acknowledgement, then the closes it carries, then one flush for the room it made.</summary>
    public bool OnAcks(ReadOnlySpan<byte> frame)
    {
        if (ControlFrames.ReadAckCount(frame, out var closedSinceReport) is not (> 0 and var count))
        {
            return false;
        }

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
    }

    /// <summary>
    /// Closes the channel: stops routing here and routes every connection the worker had not acknowledged to
    /// another worker (a worker that dies destroys the fds queued to it; the primary's copies survive).
    /// </summary>
    public void Close(string reason)
    {
        lock (_lock)
        {
            if (_isClosed)
            {
                return;
            }

            _isClosed = true;
        }

        var unacknowledged = _outbox.Close();

        _writer.Dispose();
        Serving(false); // what is queued on its slot's sockets is the primary's to hand on
        Libc.Shutdown(_socket.SafeHandle); // wakes the reader thread if it waits in poll()
        _socket.Dispose();
        _dispatcher.RemoveReady(this);
        if (unacknowledged.Count > 0)
        {
            ConnectionLog.ChannelClosedWithConnections(_logger, WorkerId, reason, unacknowledged.Count);
        }
        else
        {
            ConnectionLog.ChannelClosed(_logger, WorkerId, reason);
        }

        // Routed elsewhere before Closed completes: whoever waits for it sees the connections already back in the
        // dispatcher (or with another worker), never in between.
        if (unacknowledged.Count > 0)
        {
            _dispatcher.Redispatch(unacknowledged);
        }

        _closed.TrySetResult();
    }

    private bool OnAck(long handoffId, bool accepted)
    {
        if (!_outbox.Acknowledge(handoffId, accepted, out var refused))
        {
            return false; // an ack for something never sent to this worker
        }

        _saturated = false;
        if (refused is not null)
        {
            _dispatcher.Redispatch([refused]);
        }

        return true;
    }

    public void Dispose() => Close("the primary disposed it");

    internal void OnHeartbeat(in WorkerHeartbeat heartbeat) => HeartbeatReceived?.Invoke(heartbeat);

    public override string ToString() => $"worker {WorkerId}";
}
