// The worker's end of the control channel: proves who it is, registers the endpoints Kestrel binds, receives
// accepted sockets (SCM_RIGHTS) and routes them to the listener they belong to, and acknowledges each one.
// When the channel closes the primary is gone, and the worker shuts itself down: no orphans.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using KestrelCluster.Hosting;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker;

internal sealed class WorkerControlChannel : IDisposable
{
    /// <summary>How long a worker whose primary died may drain before it exits anyway.</summary>
    internal static readonly TimeSpan OrphanExitDelay = TimeSpan.FromSeconds(1);

    /// <summary>How long a closed connection may go unreported to the primary when no acknowledgement carries it.</summary>
    internal static readonly TimeSpan CloseReportDelay = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// The same, while acknowledgements are carrying the counts (Ack frames took closes while the last timer ran):
    /// under a steady stream of connections a 5 ms timer would wake the runtime's timer thread hundreds of times a
    /// second for nothing.
    /// </summary>
    internal static readonly TimeSpan BusyCloseReportDelay = TimeSpan.FromMilliseconds(50);

    private static readonly TimeSpan s_registerTimeout = TimeSpan.FromSeconds(30);

    private readonly WorkerIdentity _identity;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private readonly Lock _sendLock = new();
    private readonly ConcurrentDictionary<int, WorkerConnectionListener> _listeners = new();
    private readonly ConcurrentDictionary<int, TaskCompletionSource<(int ListenerId, string EndPoint, int SharedFd)>> _registrations = new();
    private Socket? _socket;
    private int _nextRequestId;
    private readonly Lock _ackLock = new();
    private readonly List<(long HandoffId, bool Accepted)> _pendingAcks = [];
    private bool _ackFlushScheduled;
    private int _closedSinceReport;
    private int _closeReportScheduled;
    private TimeSpan _closeReportDelay = CloseReportDelay;
    private int _closesRodeOnAcks;
    private readonly Timer _closeReportTimer;
    private volatile bool _closed;

    private readonly Messaging.ClusterMessenger _messenger;

    public WorkerControlChannel(WorkerIdentity identity, IHostApplicationLifetime lifetime, Messaging.ClusterMessenger messenger, ILogger<WorkerControlChannel> logger)
    {
        _messenger = messenger;
        messenger.AttachWorker(this);
        _closeReportTimer = new Timer(static channel => ((WorkerControlChannel)channel!).ReportClosed(), this, Timeout.Infinite, Timeout.Infinite);
        _identity = identity;
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>
    /// Asks the primary which of its listeners serves <paramref name="endpoint"/>; returns its id, its real endpoint,
    /// and in shared mode the fd of the listening socket itself (else -1).
    /// </summary>
    public async Task<(int ListenerId, EndPoint BoundEndPoint, int SharedFd)> RegisterAsync(EndPoint endpoint, CancellationToken cancellationToken)
    {
        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);

        var requestId = Interlocked.Increment(ref _nextRequestId);
        var reply = new TaskCompletionSource<(int, string, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _registrations[requestId] = reply;
        try
        {
            Send(ControlFrames.Register(requestId, endpoint));
            var (listenerId, text, sharedFd) = await reply.Task.WaitAsync(s_registerTimeout, cancellationToken).ConfigureAwait(false);
            if (listenerId < 0 || !EndpointText.TryParse(text, out var bound))
            {
                if (sharedFd >= 0)
                {
                    Libc.CloseDescriptor(sharedFd);
                }

                throw new InvalidOperationException($"The cluster primary refused endpoint {endpoint}: {text}");
            }

            return (listenerId, bound!, sharedFd);
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"The cluster primary did not answer the registration of {endpoint} within {s_registerTimeout}.", e);
        }
        finally
        {
            _registrations.TryRemove(requestId, out _);
        }
    }

    public void AddListener(WorkerConnectionListener listener) => _listeners[listener.ListenerId] = listener;

    /// <summary>Tells the primary to stop routing this listener's connections here.</summary>
    public void RemoveListener(WorkerConnectionListener listener)
    {
        if (_listeners.TryRemove(new KeyValuePair<int, WorkerConnectionListener>(listener.ListenerId, listener)))
        {
            TrySend(ControlFrames.Unregister(listener.ListenerId));
        }
    }

    public void SendReady() => TrySend(ControlFrames.Ready());

    public void SendHeartbeat(in WorkerHeartbeat heartbeat)
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HeartbeatLength];
        ControlFrames.WriteHeartbeat(frame, heartbeat);
        TrySend(frame);
    }

    /// <summary>
    /// Acknowledges a handed-off socket: the primary closes its copy (accepted) or routes it elsewhere (refused).
    /// Acknowledgements made in a burst (Kestrel accepting several queued connections in a row) travel in one
    /// frame: one send here and one wake-up in the primary instead of one per connection.
    /// </summary>
    public void Acknowledge(long handoffId, bool accepted)
    {
        lock (_ackLock)
        {
            _pendingAcks.Add((handoffId, accepted));
            if (_ackFlushScheduled)
            {
                return;
            }

            _ackFlushScheduled = true;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static channel => channel.FlushAcks(), this, preferLocal: false);
    }

    private void FlushAcks()
    {
        Span<byte> frame = stackalloc byte[ControlFrames.AckLength(ControlFrames.MaxAcksPerFrame)];
        while (true)
        {
            int length;
            lock (_ackLock)
            {
                var count = Math.Min(_pendingAcks.Count, ControlFrames.MaxAcksPerFrame);
                if (count == 0)
                {
                    _ackFlushScheduled = false; // acks made while the last frame was sent went with it
                    return;
                }

                // Closes counted so far go along in the same frame: a pending report timer then finds less or nothing.
                var closed = Interlocked.Exchange(ref _closedSinceReport, 0);
                if (closed > 0)
                {
                    Volatile.Write(ref _closesRodeOnAcks, 1);
                }

                length = ControlFrames.WriteAcks(frame, CollectionsMarshal.AsSpan(_pendingAcks)[..count], closed);
                _pendingAcks.RemoveRange(0, count);
            }

            TrySend(frame[..length]);
        }
    }

    /// <summary>
    /// Counts a closed connection for the primary's open-connection count (least-connections scheduling). The
    /// count travels in the next Ack frame, or at the latest <see cref="CloseReportDelay"/> after the first
    /// unreported close (<see cref="BusyCloseReportDelay"/> while Ack frames are carrying the counts): one frame per
    /// connection would cost a send here and a wake-up in the primary each, for a figure nobody needs to the
    /// microsecond.
    /// </summary>
    public void OnConnectionClosed()
    {
        Interlocked.Increment(ref _closedSinceReport);
        if (Interlocked.Exchange(ref _closeReportScheduled, 1) == 0)
        {
            _closeReportTimer.Change(_closeReportDelay, Timeout.InfiniteTimeSpan);
        }
    }

    private void ReportClosed()
    {
        Volatile.Write(ref _closeReportScheduled, 0);
        var count = Interlocked.Exchange(ref _closedSinceReport, 0);

        // Ack frames carried closes since this timer was set: connections are flowing, and the next timer can wait longer.
        _closeReportDelay = Interlocked.Exchange(ref _closesRodeOnAcks, 0) == 1 ? BusyCloseReportDelay : CloseReportDelay;
        if (count > 0)
        {
            TrySend(ControlFrames.ConnectionsClosed(count));
        }
    }

    public void Dispose()
    {
        _closed = true;
        _closeReportTimer.Dispose();
        if (_socket is { } socket)
        {
            Libc.Shutdown(socket.SafeHandle); // wakes the reader thread
            socket.Dispose();
        }

        _connectLock.Dispose();
    }

    private async Task EnsureConnectedAsync(CancellationToken cancellationToken)
    {
        if (_socket is not null)
        {
            return;
        }

        await _connectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_socket is not null)
            {
                return;
            }

            var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
            try
            {
                // Synchronous on purpose (a local socket connects at once): an async call would register the socket
                // with the runtime's epoll thread, which every handed-off connection would then wake for nothing.
                socket.Connect(new UnixDomainSocketEndPoint(_identity.ControlPath));
                socket.Send(ControlFrames.Hello(_identity.WorkerId, _identity.Secret));
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new InvalidOperationException($"Worker {_identity.WorkerId} cannot reach its cluster primary at {_identity.ControlPath}: {e.SocketErrorCode}. Is the primary still running?", e);
            }

            _socket = socket;
            _ = ControlChannelThread.Start("KC channel", () => ReceiveLoop(socket));
        }
        finally
        {
            _connectLock.Release();
        }
    }

    private void ReceiveLoop(Socket socket)
    {
        var buffer = new byte[ControlFrames.MaxFrameLength + 1];
        var fds = new int[Libc.MaxFdsPerMessage];
        var entries = new HandoffEntry[Libc.MaxFdsPerMessage];
        var reason = ControlChannelThread.ReadMessages(socket, buffer, fds, "the primary closed the control channel", (length, fdCount, truncated) =>
        {
            if (truncated || length == 0 || length > ControlFrames.MaxFrameLength
                || !Handle(buffer.AsSpan(0, length), fds.AsSpan(0, fdCount), entries))
            {
                foreach (var fd in fds.AsSpan(0, fdCount))
                {
                    Libc.CloseDescriptor(fd);
                }

                return $"the primary sent a malformed frame (type {buffer[0]}, {length} bytes, {fdCount} fds)";
            }

            return null;
        });
        OnPrimaryGone(reason);
    }

    private bool Handle(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds, Span<HandoffEntry> entries)
    {
        switch ((FrameType)frame[0])
        {
            case FrameType.Handoff when ControlFrames.TryReadHandoff(frame, fds.Length, entries):
                for (var i = 0; i < fds.Length; i++)
                {
                    if (!_listeners.TryGetValue(entries[i].ListenerId, out var listener) || !listener.TryEnqueue(fds[i], entries[i]))
                    {
                        // Not ours (any more): close our copy only; the primary still holds the connection and re-routes it.
                        Libc.CloseDescriptor(fds[i]);
                        Acknowledge(entries[i].HandoffId, accepted: false);
                    }
                }

                return true;

            case FrameType.Registered when fds.Length <= 1 && ControlFrames.TryReadRegistered(frame, out var requestId, out var listenerId, out var text):
                var sharedFd = fds.IsEmpty ? -1 : fds[0];
                if (!_registrations.TryGetValue(requestId, out var reply) || !reply.TrySetResult((listenerId, text, sharedFd)))
                {
                    if (sharedFd >= 0)
                    {
                        Libc.CloseDescriptor(sharedFd); // nobody is waiting for it any more
                    }
                }

                return true;

            case FrameType.Message when fds.IsEmpty && ControlFrames.TryReadMessage(frame, out var broadcast, out var from, out var payload):
                _messenger.OnFrame(from, broadcast, payload.ToArray());
                return true;

            case FrameType.Stop when fds.IsEmpty && frame.Length == 1:
                WorkerLog.StopRequested(_logger);
                StopApplication();
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

        WorkerLog.PrimaryGone(_logger, reason, OrphanExitDelay);
        StopApplication();

        // A worker must not outlive its primary: give the graceful stop a moment, then exit regardless.
        _ = Task.Delay(OrphanExitDelay).ContinueWith(_ => Environment.Exit(1), TaskScheduler.Default);
    }

    /// <summary>Stopping runs the app's ApplicationStopping callbacks: on the thread pool, never on the reader thread.</summary>
    private void StopApplication() =>
        ThreadPool.UnsafeQueueUserWorkItem(static lifetime => lifetime.StopApplication(), _lifetime, preferLocal: false);

    /// <summary>Sends a frame; throws if the channel is not connected or broken.</summary>
    public void Send(ReadOnlySpan<byte> frame)
    {
        if (_socket is null || _closed)
        {
            throw new InvalidOperationException("This worker is not connected to its primary.");
        }

        lock (_sendLock)
        {
            _socket!.Send(frame);
        }
    }

    private void TrySend(ReadOnlySpan<byte> frame)
    {
        if (_closed || _socket is null)
        {
            return;
        }

        try
        {
            Send(frame);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The receive loop sees the same failure and shuts the worker down.
        }
    }
}
