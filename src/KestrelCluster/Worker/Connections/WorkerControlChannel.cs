// The worker's end of the control channel: proves who it is, registers the endpoints Kestrel binds, receives
// accepted sockets (SCM_RIGHTS) and routes them to the listener they belong to, and acknowledges each one.
// When the channel closes the primary is gone, and the worker shuts itself down: no orphans. At its open-files limit it
// refuses what it cannot take (WorkerControlChannel.FdLimit.cs); connecting and registering are in
// WorkerControlChannel.Register.cs.
using System.Collections.Concurrent;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Connections;

internal sealed partial class WorkerControlChannel : Messaging.IMessageLink, IDisposable
{
    private readonly CancellationTokenSource _warmUpNotWanted = new();
    private readonly TaskCompletionSource _readySent = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How long a worker whose primary died may drain before it exits anyway.</summary>
    internal static readonly TimeSpan OrphanExitDelay = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan s_registerTimeout = TimeSpan.FromSeconds(30);

    private readonly WorkerIdentity _identity;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private readonly ConcurrentDictionary<int, WorkerConnectionListener> _listeners = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<(int ListenerId, string EndPoint,
        int SharedFd)>> _registrations = new();
    private volatile Socket? _socket;
    private volatile ControlChannelWriter? _writer;
    private int _nextRequestId;
    private volatile bool _closed;

    private readonly Messaging.ClusterMessenger _messenger;

    private readonly WorkerDrainNotice _drainNotice;

    public WorkerControlChannel(WorkerIdentity identity, IHostApplicationLifetime lifetime, Messaging.ClusterMessenger messenger,
        WorkerDrainNotice drainNotice, ILoggerFactory loggers)
    {
        _drainNotice = drainNotice;
        _messenger = messenger;
        messenger.AttachWorker(identity.WorkerId, this);
        Acknowledgements = new WorkerAcknowledgements(TrySend);
        StatusQueries = new WorkerStatusQueries(frame => TrySend(frame.Span));
        _identity = identity;
        _lifetime = lifetime;
        _logger = loggers.CreateLogger("KestrelCluster.Worker.WorkerControlChannel"); // the category predates Worker/Connections
        ReadFdLimit(now: true);
    }

    /// <summary>Acks and closed-connection counts for the primary, sent through this channel.</summary>
    public WorkerAcknowledgements Acknowledgements { get; }

    /// <summary>Questions about the whole cluster, answered by the primary through this channel.</summary>
    public WorkerStatusQueries StatusQueries { get; }

    public void AddListener(WorkerConnectionListener listener) => _listeners[listener.ListenerId] = listener;

    /// <summary>The listeners Kestrel has bound here (none in Shared mode, whose listeners accept for themselves).</summary>
    public IReadOnlyList<WorkerConnectionListener> Listeners => [.. _listeners.Values.OrderBy(l => l.ListenerId)];

    /// <summary>Tells the primary to stop routing this listener's connections here.</summary>
    public void RemoveListener(WorkerConnectionListener listener)
    {
        if (_listeners.TryRemove(new KeyValuePair<int, WorkerConnectionListener>(listener.ListenerId, listener)))
        {
            TrySend(ControlFrames.Unregister(listener.ListenerId));
        }
    }

    public void SendReady()
    {
        TrySend(ControlFrames.Ready());
        _readySent.TrySetResult();
    }

    /// <summary>
    /// Completes when this worker has told the primary it is ready: a worker accepting on a listening socket of its own (Shared,
    /// ReusePort) begins then, as the primary routes to ready workers only.
    /// </summary>
    public Task ReadySent => _readySent.Task;

    public void SendHeartbeat(in WorkerHeartbeat heartbeat)
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HeartbeatLength];
        ControlFrames.WriteHeartbeat(frame, heartbeat);
        TrySend(frame);
    }

    /// <summary>Cancelled when the primary says connections wait and no worker is ready: the warm-up ends (FrameType.EndWarmUp).</summary>
    public CancellationToken WarmUpNotWanted => _warmUpNotWanted.Token;

    public void Dispose()
    {
        _closed = true;
        Acknowledgements.Dispose();
        _writer?.Dispose();
        if (_socket is { } socket)
        {
            Libc.Shutdown(socket.SafeHandle); // wakes the reader thread
            socket.Dispose();
        }

        _connectLock.Dispose();
        _warmUpNotWanted.Dispose();
    }

    private void ReceiveLoop(Socket socket)
    {
        var buffer = new byte[ControlFrames.MaxFrameLength + 1];
        var fds = new int[ControlFrames.MaxFdsPerMessage];
        var entries = new HandoffEntry[ControlFrames.MaxFdsPerMessage];
        var reason = ControlChannelThread.ReadMessages(socket, buffer, fds, "the primary closed the control channel", (length,
            fdCount, truncated, descriptorsLost) =>
        {
            if (!truncated && length is > 0 and <= ControlFrames.MaxFrameLength
                && Handle(buffer.AsSpan(0, length), fds.AsSpan(0, fdCount), entries, descriptorsLost))
            {
                return null;
            }

            foreach (var fd in fds.AsSpan(0, fdCount))
            {
                Libc.CloseDescriptor(fd);
            }

            return $"the primary sent a malformed frame (type {buffer[0]}, {length} bytes, {fdCount} fds)";
        });
        OnPrimaryGone(reason);
    }

    /// <summary>
    /// Handles one frame; false if it is malformed. <paramref name="descriptorsLost"/>: the kernel could not install every
    /// fd sent with it (this worker is at its open-files limit), which only a Handoff or a Registered frame survives.
    /// </summary>
    private bool Handle(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds, Span<HandoffEntry> entries, bool descriptorsLost)
    {
        switch ((FrameType)frame[0])
        {
            case FrameType.Handoff when ControlFrames.TryReadHandoff(frame, entries, out var count)
                && (fds.Length == count || (descriptorsLost && fds.Length < count)):
                _fdLimitReported = false;
                ReadFdLimit(descriptorsLost);
                for (var i = 0; i < fds.Length; i++)
                {
                    if (InFdReserve(fds[i], pending: i))
                    {
                        // Too close to the open-files limit: keep the reserve for the runtime, the app and Kestrel.
                        Libc.CloseDescriptor(fds[i]);
                        RefuseAtFdLimit(entries[i].HandoffId);
                    }
                    else if (!_listeners.TryGetValue(entries[i].ListenerId, out var listener) || !listener.TryEnqueue(fds[i], entries[i]))
                    {
                        // Not ours (any more): close our copy only; the primary still holds the connection and re-routes it.
                        Libc.CloseDescriptor(fds[i]);
                        Acknowledgements.Acknowledge(entries[i].HandoffId, accepted: false);
                    }
                }

                // The kernel installed the first fds and dropped the rest (MSG_CTRUNC): refused, the primary routes them on.
                for (var i = fds.Length; i < count; i++)
                {
                    RefuseAtFdLimit(entries[i].HandoffId);
                }

                return true;

            case FrameType.Registered when descriptorsLost && fds.IsEmpty && ControlFrames.TryReadRegistered(frame, out var lostId,
                out _, out _):
                // Shared mode's listening socket did not arrive: this worker cannot serve the endpoint.
                _registrations.GetValueOrDefault(lostId)?.TrySetResult((-1, $"the listening socket could not be received: this " +
                    $"worker is at its open-files limit ({_fdLimit})", -1));
                return true;

            case FrameType.Registered when fds.Length <= 1 && !descriptorsLost && ControlFrames.TryReadRegistered(frame, out var requestId,
                out var listenerId, out var text):
                var sharedFd = fds.IsEmpty ? -1 : fds[0];
                if (!_registrations.TryGetValue(requestId, out var reply) || !reply.TrySetResult((listenerId, text, sharedFd)))
                {
                    if (sharedFd >= 0)
                    {
                        Libc.CloseDescriptor(sharedFd); // nobody is waiting for it any more
                    }
                }

                return true;

            case FrameType.Message when fds.IsEmpty && !descriptorsLost && ControlFrames.TryReadMessage(frame, out var broadcast,
                out var from, out var payload):
                _messenger.OnFrame(from, broadcast, payload.ToArray());
                return true;

            case FrameType.StatusReply when fds.IsEmpty && !descriptorsLost:
                return StatusQueries.OnReply(frame);

            case FrameType.EndWarmUp when fds.IsEmpty && !descriptorsLost && frame.Length == 1:
                _ = _warmUpNotWanted.CancelAsync(); // the warm-up's loops end on the thread pool, not on this reader
                return true;

            case FrameType.Stop when fds.IsEmpty && !descriptorsLost && frame.Length == 1:
                WorkerLog.StopRequested(_logger, (long)WorkerDrainNotice.Period.TotalMilliseconds);
                _drainNotice.Begin(StopApplication); // keep-alive clients told to reconnect first
                return true;

            default:
                return false;
        }
    }

    private void OnPrimaryGone(string reason)
    {
        if (_closed)
        {
            return; // we closed it ourselves, on the way out
        }

        _closed = true;
        foreach (var reply in _registrations.Values)
        {
            reply.TrySetException(new InvalidOperationException($"The cluster primary is gone: {reason}."));
        }

        StatusQueries.FailAll(reason);
        WorkerLog.PrimaryGone(_logger, reason, OrphanExitDelay);
        StopApplication();

        // A worker must not outlive its primary: give the graceful stop a moment, then exit regardless.
        _ = Task.Delay(OrphanExitDelay).ContinueWith(_ => Environment.Exit(1), TaskScheduler.Default);
    }

    /// <summary>Stopping runs the app's ApplicationStopping callbacks: on the thread pool, never on the reader thread.</summary>
    private void StopApplication() =>
        ThreadPool.UnsafeQueueUserWorkItem(static lifetime => lifetime.StopApplication(), _lifetime, preferLocal: false);

    /// <summary>Sends a cluster message to the primary; see <see cref="ControlChannelWriter.SendMessageAsync"/>.</summary>
    public Task SendMessageAsync(ReadOnlySpan<byte> frame, CancellationToken cancellationToken) =>
        _writer is { } writer && !_closed
            ? writer.SendMessageAsync(frame, cancellationToken)
            : throw new InvalidOperationException("This worker is not connected to its primary.");

    /// <summary>Sends a frame to the primary without blocking; false when the channel is not connected or closed.</summary>
    private bool TrySend(ReadOnlySpan<byte> frame) => !_closed && _writer is { } writer && writer.TrySend(frame);
}
