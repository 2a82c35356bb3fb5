// Routes every accepted connection to a ready worker. Connections no worker can take right now (none ready,
// all at their in-flight limit) wait in a bounded queue; when the queue is full the accept loops pause, so
// the kernel's backlog absorbs the burst instead of the primary's memory. Nothing accepted is ever dropped.
//
// Routing and sending are two steps: under the lock the scheduler chooses a worker for every waiting connection
// and the connection joins that worker's outbox (where it already counts as in flight); after the lock, each
// worker's outbox goes out as one message. Connections that arrive in a burst thus cost one sendmsg per worker,
// not one per connection, and the worker's reader wakes once for all of them.
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed class HandoffDispatcher : IDisposable
{
    /// <summary>Accepted connections waiting for a worker before the accept loops pause.</summary>
    internal const int MaxWaiting = 4096;

    private readonly Lock _lock = new();
    private readonly List<WorkerChannel> _ready = [];
    private WorkerChannel[] _readySnapshot = []; // _ready, copied on change: what a flush sends after the lock
    private readonly Queue<AcceptedConnection> _waiting = new();
    // The scheduler's view, rebuilt for each choice (under the lock): the candidates and, at the same index, their channels.
    private WorkerCandidate[] _candidates = new WorkerCandidate[8];
    private WorkerChannel[] _candidateChannels = new WorkerChannel[8];
    private readonly IConnectionScheduler _scheduler;
    private readonly ILogger _logger;
    private readonly ManualResetEventSlim _room = new(initialState: true);
    private bool _stopped;
    private long _accepted; // written under _lock
    private long _redispatched; // written under _lock

    public HandoffDispatcher(IConnectionScheduler scheduler, ILogger<HandoffDispatcher> logger)
    {
        _scheduler = scheduler;
        _logger = logger;
    }

    public int WaitingCount
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Connections accepted since the primary started.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections handed back by a worker (refused, or never acknowledged before it went away) and routed again.</summary>
    public long Redispatched => Interlocked.Read(ref _redispatched);

    /// <summary>Hands the connections to workers now, or queues them until one can take them.</summary>
    public void Dispatch(List<AcceptedConnection> connections)
    {
        lock (_lock)
        {
            if (_stopped)
            {
                foreach (var connection in connections)
                {
                    connection.Close();
                }

                return;
            }

            foreach (var connection in connections)
            {
                _waiting.Enqueue(connection);
            }

            Interlocked.Add(ref _accepted, connections.Count);

            if (_waiting.Count >= MaxWaiting)
            {
                _room.Reset();
            }
        }

        Flush();
    }

    /// <summary>Blocks the accept thread while the waiting queue is full (the kernel's backlog holds the rest).</summary>
    public void WaitForRoom()
    {
        if (!_room.IsSet)
        {
            PrimaryLog.AcceptPaused(_logger, WaitingCount);
            _room.Wait();
        }
    }

    public void AddReady(WorkerChannel worker)
    {
        lock (_lock)
        {
            if (!_ready.Contains(worker))
            {
                // Kept in slot order: schedulers see candidates ordered by slot.
                var index = _ready.FindIndex(w => w.Worker.Slot > worker.Worker.Slot);
                _ready.Insert(index < 0 ? _ready.Count : index, worker);
                _readySnapshot = [.. _ready];
            }
        }

        Flush();
    }

    public void RemoveReady(WorkerChannel worker)
    {
        lock (_lock)
        {
            if (_ready.Remove(worker))
            {
                _readySnapshot = [.. _ready];
            }
        }
    }

    /// <summary>Hands out waiting connections while some worker can take them.</summary>
    public void Flush()
    {
        while (true)
        {
            WorkerChannel[] workers;
            lock (_lock)
            {
                var routed = 0;
                while (_waiting.Count > 0 && routed < ControlFrames.MaxFdsPerMessage && Choose(_waiting.Peek()) is { } worker)
                {
                    worker.AddToOutbox(_waiting.Dequeue());
                    routed++;
                }

                if (!_room.IsSet && _waiting.Count < MaxWaiting / 2)
                {
                    _room.Set();
                }

                if (routed == 0)
                {
                    return;
                }

                // Every worker chosen above is in this snapshot, even if it leaves _ready before its outbox is sent.
                workers = _readySnapshot;
            }

            foreach (var worker in workers)
            {
                // A worker that cannot take its outbox (full, or gone) hands it back through Redispatch.
                worker.SendOutbox();
            }
        }
    }

    /// <summary>Puts back connections a worker refused or never acknowledged (it went away), then routes them again.</summary>
    public void Redispatch(IEnumerable<AcceptedConnection> connections)
    {
        foreach (var connection in connections)
        {
            Requeue(connection);
        }

        Flush();
    }

    public void Dispose() => _room.Dispose();

    /// <summary>Stops routing: closes every waiting connection (the primary is shutting down).</summary>
    public void Stop()
    {
        List<AcceptedConnection> waiting;
        lock (_lock)
        {
            _stopped = true;
            waiting = [.. _waiting];
            _waiting.Clear();
            _room.Set();
        }

        foreach (var connection in waiting)
        {
            connection.Close();
        }

        if (waiting.Count > 0)
        {
            PrimaryLog.WaitingConnectionsClosed(_logger, waiting.Count);
        }
    }

    /// <summary>Asks the scheduler to choose among the workers that can take the connection now. Under the lock.</summary>
    private WorkerChannel? Choose(AcceptedConnection connection)
    {
        var count = 0;
        foreach (var worker in _ready)
        {
            if (worker.CanTake(connection.Listener.Id))
            {
                if (count == _candidates.Length)
                {
                    Array.Resize(ref _candidates, count * 2);
                    Array.Resize(ref _candidateChannels, count * 2);
                }

                _candidates[count] = worker.Candidate;
                _candidateChannels[count++] = worker;
            }
        }

        if (count == 0)
        {
            return null;
        }

        var index = _scheduler.Choose(new ScheduledConnection(connection), _candidates.AsSpan(0, count));
        var chosen = (uint)index < (uint)count ? _candidateChannels[index] : null;
        Array.Clear(_candidateChannels, 0, count); // no channel kept alive by the buffer after its worker is gone
        return chosen;
    }

    private void Requeue(AcceptedConnection connection)
    {
        lock (_lock)
        {
            if (!_stopped)
            {
                _waiting.Enqueue(connection);
                Interlocked.Increment(ref _redispatched);
                return;
            }
        }

        // Shutting down: a worker handed it back while draining, and no worker is left to take it.
        connection.Close();
        PrimaryLog.WaitingConnectionsClosed(_logger, 1);
    }
}
