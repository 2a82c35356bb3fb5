// IClusterMessenger for every role: in the primary it sends through the workers' channels and relays
// broadcasts; in a worker it sends through its control channel; standalone it delivers to itself.
using KestrelCluster.Hosting;
using KestrelCluster.Primary;
using KestrelCluster.Protocol;
using KestrelCluster.Worker;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Messaging;

internal sealed partial class ClusterMessenger(ClusterContext context, ILogger<ClusterMessenger> logger) : IClusterMessenger
{
    private readonly Lock _lock = new();
    private Func<ClusterMessage, ValueTask>[] _handlers = [];
    private Func<IReadOnlyList<WorkerProcess>>? _workers;
    private WorkerControlChannel? _channel;

    public int MaxMessageSize => ControlFrames.MaxMessageSize;

    /// <summary>In the primary: where the workers are.</summary>
    public void AttachPrimary(Func<IReadOnlyList<WorkerProcess>> workers) => _workers = workers;

    /// <summary>In a worker: its control channel.</summary>
    public void AttachWorker(WorkerControlChannel channel) => _channel = channel;

    public ValueTask SendToPrimaryAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        if (context.Role != ClusterRole.Worker || _channel is null)
        {
            throw new InvalidOperationException("Only a worker can send to the primary; this process is " + context + ".");
        }

        _channel.Send(ControlFrames.Message(broadcast: false, fromWorkerId: context.WorkerId!.Value, payload.Span));
        return ValueTask.CompletedTask;
    }

    public ValueTask SendToWorkerAsync(int workerId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        if (context.Role != ClusterRole.Primary || _workers is null)
        {
            throw new InvalidOperationException("Only the primary of a cluster can send to a worker; this process is " + context + ".");
        }

        var channel = _workers().FirstOrDefault(w => w.Id == workerId)?.Channel
            ?? throw new ArgumentException($"No connected worker has id {workerId}.", nameof(workerId));
        if (!channel.TrySendControl(ControlFrames.Message(broadcast: false, fromWorkerId: 0, payload.Span)))
        {
            throw new InvalidOperationException($"Worker {workerId} could not be reached: its control channel closed.");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckSize(payload);
        switch (context.Role)
        {
            case ClusterRole.Worker when _channel is not null:
                // Workers only talk to the primary; it relays the broadcast to every worker, this one included.
                _channel.Send(ControlFrames.Message(broadcast: true, fromWorkerId: context.WorkerId!.Value, payload.Span));
                break;
            case ClusterRole.Primary when _workers is not null:
                Relay(0, payload.Span);
                break;
            default:
                Deliver(null, broadcast: true, payload.ToArray());
                break;
        }

        return ValueTask.CompletedTask;
    }

    public IDisposable Subscribe(Func<ClusterMessage, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_lock)
        {
            _handlers = [.. _handlers, handler];
        }

        return new Subscription(this, handler);
    }

    /// <summary>A message frame arrived (primary: from a worker; worker: from the primary).</summary>
    public void OnFrame(int senderWorkerId, bool broadcast, ReadOnlyMemory<byte> payload)
    {
        if (context.Role == ClusterRole.Primary && broadcast)
        {
            Relay(senderWorkerId, payload.Span);
            return;
        }

        Deliver(senderWorkerId == 0 ? null : senderWorkerId, broadcast, payload);
    }

    private void Relay(int fromWorkerId, ReadOnlySpan<byte> payload)
    {
        var frame = ControlFrames.Message(broadcast: true, fromWorkerId, payload);
        foreach (var worker in _workers!())
        {
            if (worker.Channel is { } channel && !worker.IsRetiring)
            {
                channel.TrySendControl(frame);
            }
        }
    }

    private void Deliver(int? fromWorkerId, bool broadcast, ReadOnlyMemory<byte> payload)
    {
        var message = new ClusterMessage(fromWorkerId, broadcast, payload);
        foreach (var handler in Volatile.Read(ref _handlers))
        {
            // Off the receive loop: a slow handler must not hold up connections.
            _ = Task.Run(async () =>
            {
                try
                {
                    await handler(message).ConfigureAwait(false);
                }
#pragma warning disable CA1031 // a subscriber's failure is logged and must not end the delivery loop
                catch (Exception e)
#pragma warning restore CA1031
                {
                    HandlerFailed(logger, e);
                }
            });
        }
    }

    private static void CheckSize(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > ControlFrames.MaxMessageSize)
        {
            throw new ArgumentException(
                $"A cluster message is at most {ControlFrames.MaxMessageSize} bytes; this one has {payload.Length}. Put large data in a shared store or file and send a reference to it.",
                nameof(payload));
        }
    }

    [LoggerMessage(200, LogLevel.Error, "A cluster message subscriber threw.", EventName = "MessageHandlerFailed")]
    private static partial void HandlerFailed(ILogger logger, Exception exception);

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
