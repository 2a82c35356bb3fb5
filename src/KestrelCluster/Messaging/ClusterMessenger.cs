// IClusterMessenger for every role: in the primary it sends through the workers' channels and relays
// broadcasts; in a worker it sends through its control channel; standalone it delivers to itself. It knows the
// channels only as IMessageLink, which the primary's and the worker's channels implement.
//
// Order: messages from one sender reach each receiver in the order they were sent (each channel is one ordered
// SOCK_SEQPACKET stream with one ordered send queue, and the primary relays a broadcast from the reader of its
// sender's channel). A receiving process delivers them one at a time, in arrival order: each subscriber's handler
// is awaited before the next subscriber, and the next message, is handed over.
using System.Threading.Channels;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Messaging;

internal sealed partial class ClusterMessenger : IClusterMessenger
{
    /// <summary>Messages received and not yet delivered to the subscribers, after which new ones are refused (logged).</summary>
    internal const int MaxUndelivered = 4096;

    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Channel<ClusterMessage> _inbox = Channel.CreateBounded<ClusterMessage>(
        new BoundedChannelOptions(MaxUndelivered) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private Func<ClusterMessage, ValueTask>[] _handlers = [];
    private Func<IReadOnlyList<MessageTarget>>? _workers;
    private IMessageLink? _primary;
    private int _workerId;
    private Task? _delivery;

    public ClusterMessenger(ILogger<ClusterMessenger> logger)
    {
        _logger = logger;
    }

    public int MaxMessageSize => ControlFrames.MaxMessageSize;

    /// <summary>In the primary: where the workers are.</summary>
    public void AttachPrimary(Func<IReadOnlyList<MessageTarget>> workers) => _workers = workers;

    /// <summary>In a worker: its id and its channel to the primary.</summary>
    public void AttachWorker(int workerId, IMessageLink primary)
    {
        _workerId = workerId;
        _primary = primary;
    }

    public ValueTask SendToPrimaryAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        if (_primary is null)
        {
            throw new InvalidOperationException($"Only a worker can send to the primary; this process is {Role}.");
        }

        return new(_primary.SendMessageAsync(ControlFrames.Message(broadcast: false, fromWorkerId: _workerId, payload.Span),
            cancellationToken));
    }

    public ValueTask SendToWorkerAsync(int workerId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        if (_workers is null)
        {
            throw new InvalidOperationException($"Only the primary of a cluster can send to a worker; this process is {Role}.");
        }

        var target = _workers().FirstOrDefault(w => w.WorkerId == workerId).Link
            ?? throw new ArgumentException($"No connected worker has id {workerId}.", nameof(workerId));
        return new(target.SendMessageAsync(ControlFrames.Message(broadcast: false, fromWorkerId: 0, payload.Span), cancellationToken));
    }

    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        if (_primary is not null)
        {
            // Workers only talk to the primary; it relays the broadcast to every worker, this one included.
            return new(_primary.SendMessageAsync(ControlFrames.Message(broadcast: true, fromWorkerId: _workerId, payload.Span),
                cancellationToken));
        }

        if (_workers is not null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Relay(0, payload.Span);
            return ValueTask.CompletedTask;
        }

        Receive(null, broadcast: true, payload.ToArray());
        return ValueTask.CompletedTask;
    }

    public IDisposable Subscribe(Func<ClusterMessage, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_lock)
        {
            _handlers = [.. _handlers, handler];
            _delivery ??= Task.Run(DeliverAsync);
        }

        return new Subscription(this, handler);
    }

    /// <summary>A message frame arrived (primary: from a worker; worker: from the primary), on a reader thread.</summary>
    public void OnFrame(int senderWorkerId, bool broadcast, ReadOnlyMemory<byte> payload)
    {
        if (_workers is not null && broadcast)
        {
            Relay(senderWorkerId, payload.Span);
            return;
        }

        Receive(senderWorkerId == 0 ? null : senderWorkerId, broadcast, payload);
    }

    /// <summary>
    /// Sends a broadcast to every serving worker, without waiting for any of them: one slow worker delays no one.
    /// A worker whose send queue is full (it is not reading) misses it, and that is logged.
    /// </summary>
    private void Relay(int fromWorkerId, ReadOnlySpan<byte> payload)
    {
        var frame = ControlFrames.Message(broadcast: true, fromWorkerId, payload);
        foreach (var worker in _workers!())
        {
            if (worker.IsServing)
            {
                var sent = worker.Link.SendMessageAsync(frame, CancellationToken.None);
                if (sent.IsFaulted)
                {
                    BroadcastNotDelivered(_logger, fromWorkerId, worker.WorkerId, sent.Exception!.InnerException!.Message);
                }
            }
        }
    }

    /// <summary>Queues a received message for the subscribers; never blocks the reader thread that received it.</summary>
    private void Receive(int? fromWorkerId, bool broadcast, ReadOnlyMemory<byte> payload)
    {
        if (Volatile.Read(ref _handlers).Length == 0)
        {
            return; // nobody listens in this process
        }

        if (!_inbox.Writer.TryWrite(new ClusterMessage(fromWorkerId, broadcast, payload)))
        {
            MessageNotDelivered(_logger, fromWorkerId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "the primary",
                MaxUndelivered);
        }
    }

    private async Task DeliverAsync()
    {
        await foreach (var message in _inbox.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            foreach (var handler in Volatile.Read(ref _handlers))
            {
                try
                {
                    await handler(message).ConfigureAwait(false);
                }
#pragma warning disable CA1031 // a subscriber's failure is logged and must not end the delivery loop
                catch (Exception e)
#pragma warning restore CA1031
                {
                    HandlerFailed(_logger, e);
                }
            }
        }
    }

    private string Role => _primary is not null ? $"worker {_workerId}" : _workers is not null ? "the primary" : "not clustered";

    private static void CheckSize(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > ControlFrames.MaxMessageSize)
        {
            throw new ArgumentException(
                $"A cluster message is at most {ControlFrames.MaxMessageSize} bytes; this one has {payload.Length}. Put large data " +
                    $"in a shared store or file and send a reference to it.",
                nameof(payload));
        }
    }

    [LoggerMessage(200, LogLevel.Error, "A cluster message subscriber threw.", EventName = "MessageHandlerFailed")]
    private static partial void HandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(201, LogLevel.Error,
        "A broadcast from worker {FromWorkerId} (0: the primary) was not delivered to worker {WorkerId}: {Reason}",

        EventName = "BroadcastNotDelivered")]
    private static partial void BroadcastNotDelivered(ILogger logger, int fromWorkerId, int workerId, string reason);

    [LoggerMessage(202, LogLevel.Error,
        "A cluster message from {From} was not delivered: this process's subscribers are {Count} messages behind.",

        EventName = "MessageNotDelivered")]
    private static partial void MessageNotDelivered(ILogger logger, string from, int count);

    private sealed class Subscription(ClusterMessenger owner, Func<ClusterMessage, ValueTask> handler) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._lock)
            {
                owner._handlers = [.. owner._handlers.Where(h => h != handler)];
            }
        }
    }
}

/// <summary>A channel a cluster message can be sent through (a worker's to its primary, the primary's to a worker).</summary>
internal interface IMessageLink
{
    /// <summary>Completes once the message is handed to the kernel; refused with an error when it cannot be sent.</summary>
    Task SendMessageAsync(ReadOnlySpan<byte> frame, CancellationToken cancellationToken);
}

/// <summary>A worker as the primary's messenger sees it.</summary>
internal readonly record struct MessageTarget(int WorkerId, IMessageLink Link, bool IsServing);
