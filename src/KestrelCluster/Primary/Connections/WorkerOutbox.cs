// The connections of one worker's channel that the worker has not acknowledged yet: routed here and not sent (the
// outbox proper), and sent and not acknowledged (in flight). The primary keeps each fd until the worker's ack: a worker
// that dies with fds queued to it destroys its copies, and its clients would get a reset; the primary's copies go to
// another worker instead. Connections that arrive together go out together, several fds in one sendmsg.
using System.Diagnostics;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Connections;

internal sealed class WorkerOutbox(Socket socket)
{
    private static long s_nextHandoffId;

    private readonly Lock _lock = new(); // everything below; taken after the dispatcher's, before the writer's
    private readonly Dictionary<long, AcceptedConnection> _inFlight = [];
    private readonly List<AcceptedConnection> _routed = [];
    private long _lastHandoffAt;
    private long _handedOff;
    private bool _closed;

    /// <summary>Routed or in flight, read without the lock (the scheduler's check; a moment stale at worst).</summary>
    public int UnacknowledgedEstimate => _inFlight.Count + _routed.Count;

    /// <summary>Routed or in flight.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _inFlight.Count + _routed.Count;
            }
        }
    }

    /// <summary>Connections handed to this worker and acknowledged by it.</summary>
    public long HandedOff => Interlocked.Read(ref _handedOff);

    /// <summary>Routes a connection here; it counts as in flight at once and leaves with <see cref="Send"/>.</summary>
    public void Add(AcceptedConnection connection)
    {
        lock (_lock)
        {
            _routed.Add(connection);
        }
    }

    /// <summary>
    /// Sends what was routed here, usually in one message (more when concurrent flushes routed more than one holds).
    /// Returns 0, or the errno that stopped it: on EAGAIN (the worker's queue is full) <paramref name="refused"/> holds
    /// what it could not take, to route elsewhere; any other errno means the channel is broken.
    /// </summary>
    public int Send(out List<AcceptedConnection>? refused)
    {
        refused = null;
        lock (_lock)
        {
            while (_routed.Count > 0 && !_closed)
            {
                var errno = SendFirst(Math.Min(_routed.Count, ControlFrames.MaxFdsPerMessage));
                if (errno == Libc.EAGAIN)
                {
                    refused = [.. _routed];
                    _routed.Clear();
                }

                if (errno != 0)
                {
                    return errno;
                }
            }

            return 0;
        }
    }

    /// <summary>
    /// Takes the worker's ack for <paramref name="handoffId"/>: accepted, the primary closes its copy; refused, the
    /// connection is returned for another worker. False for an id never sent to this worker.
    /// </summary>
    public bool Acknowledge(long handoffId, bool accepted, out AcceptedConnection? refusedConnection)
    {
        refusedConnection = null;
        AcceptedConnection? connection;
        lock (_lock)
        {
            if (!_inFlight.Remove(handoffId, out connection))
            {
                return false;
            }
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
            refusedConnection = connection;
        }

        return true;
    }

    /// <summary>
    /// Completes once the last connection handed to this worker is <paramref name="grace"/> old. Kestrel's graceful stop
    /// closes, unanswered, a connection whose first request has not arrived yet; for a connection handed over a moment
    /// before the stop, that would be a client's request lost. Called once no more is routed here.
    /// </summary>
    public Task WaitForLastHandoffAsync(TimeSpan grace)
    {
        long last;
        lock (_lock)
        {
            // Connections routed here and not sent yet count as handed over now.
            last = _routed.Count > 0 ? Stopwatch.GetTimestamp() : _lastHandoffAt;
        }

        var remaining = last == 0 ? TimeSpan.Zero : grace - Stopwatch.GetElapsedTime(last);
        return remaining > TimeSpan.Zero ? Task.Delay(remaining) : Task.CompletedTask;
    }

    /// <summary>The channel closed: everything unacknowledged, to route elsewhere; nothing is sent from here on.</summary>
    public List<AcceptedConnection> Close()
    {
        lock (_lock)
        {
            _closed = true;
            List<AcceptedConnection> unacknowledged = [.. _inFlight.Values, .. _routed];
            _inFlight.Clear();
            _routed.Clear();
            return unacknowledged;
        }
    }

    /// <summary>Sends the first <paramref name="count"/> routed connections in one message. Under the lock.</summary>
    private int SendFirst(int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (!_routed[i].TryAddRef())
            {
                _routed.RemoveAt(i--); // closed meanwhile (the primary is stopping): nothing left to hand over
                count = Math.Min(count, _routed.Count);
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
            var connection = _routed[i];
            fds[i] = connection.Fd;
            ControlFrames.WriteHandoffEntry(frame, i, new HandoffEntry(connection.Listener.Id, firstId + i, connection.AcceptedAt,
                connection.Peer));
        }

        var errno = Libc.SendMessage(socket.SafeHandle, frame, fds);
        for (var i = 0; i < count; i++)
        {
            _routed[i].Release(); // no fd is used after this point without a new reference
        }

        if (errno == 0)
        {
            for (var i = 0; i < count; i++)
            {
                _inFlight.Add(firstId + i, _routed[i]);
            }

            _routed.RemoveRange(0, count);
            _lastHandoffAt = Stopwatch.GetTimestamp();
        }

        return errno;
    }
}
