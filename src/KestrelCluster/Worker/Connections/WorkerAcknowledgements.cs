// What a worker tells its primary about the connections it was handed: an ack for each (accepted or refused),
// batched, and the count of connections closed since the last report, riding on the acks or on a timer.
using System.Runtime.InteropServices;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerAcknowledgements : IDisposable
{
    /// <summary>How long a closed connection may go unreported to the primary when no acknowledgement carries it.</summary>
    internal static readonly TimeSpan CloseReportDelay = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// The same, while acknowledgements are carrying the counts (Ack frames took closes while the last timer ran):
    /// under a steady stream of connections a 5 ms timer would wake the runtime's timer thread hundreds of times a
    /// second for nothing.
    /// </summary>
    internal static readonly TimeSpan BusyCloseReportDelay = TimeSpan.FromMilliseconds(50);

    private readonly Func<ReadOnlySpan<byte>, bool> _send;
    private readonly Lock _ackLock = new();
    private readonly List<(long HandoffId, bool Accepted)> _pendingAcks = [];
    private readonly Timer _closeReportTimer;
    private bool _ackFlushScheduled;
    private int _closedSinceReport;
    private int _closeReportScheduled;
    private TimeSpan _closeReportDelay = CloseReportDelay;
    private int _closesRodeOnAcks;
    private int _openConnections;

    /// <summary>Handed-off connections this worker took and has not closed yet (each one an fd).</summary>
    public int OpenConnections => Volatile.Read(ref _openConnections);

    /// <param name="send">Sends a frame to the primary without blocking (the channel's writer).</param>
    public WorkerAcknowledgements(Func<ReadOnlySpan<byte>, bool> send)
    {
        _send = send;
        _closeReportTimer = new Timer(static acks => ((WorkerAcknowledgements)acks!).ReportClosed(), this, Timeout.Infinite,
            Timeout.Infinite);
    }

    /// <summary>
    /// Acknowledges a handed-off socket: the primary closes its copy (accepted) or routes it elsewhere (refused).
    /// Acknowledgements made in a burst (Kestrel accepting several queued connections in a row) travel in one
    /// frame: one send here and one wake-up in the primary instead of one per connection.
    /// </summary>
    public void Acknowledge(long handoffId, bool accepted)
    {
        if (accepted)
        {
            Interlocked.Increment(ref _openConnections);
        }

        lock (_ackLock)
        {
            _pendingAcks.Add((handoffId, accepted));
            if (_ackFlushScheduled)
            {
                return;
            }

            _ackFlushScheduled = true;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static acks => acks.FlushAcks(), this, preferLocal: false);
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
        Interlocked.Decrement(ref _openConnections);
        Interlocked.Increment(ref _closedSinceReport);
        if (Interlocked.Exchange(ref _closeReportScheduled, 1) == 0)
        {
            _closeReportTimer.Change(_closeReportDelay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// A connection this worker accepted on its own listening socket (Shared, ReusePort): it holds an fd here, but the primary
    /// never counted it, so its close is not reported (the primary's open count would go below zero).
    /// </summary>
    public void OnOwnConnectionOpened() => Interlocked.Increment(ref _openConnections);

    /// <summary>The close of a connection counted by <see cref="OnOwnConnectionOpened"/>.</summary>
    public void OnOwnConnectionClosed() => Interlocked.Decrement(ref _openConnections);

    public void Dispose() => _closeReportTimer.Dispose();

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

            _send(frame[..length]);
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
            _send(ControlFrames.ConnectionsClosed(count));
        }
    }
}
