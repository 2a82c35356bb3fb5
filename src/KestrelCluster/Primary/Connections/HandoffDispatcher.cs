// Routes every accepted connection to a ready worker. Connections no worker can take right now (none ready,
// all at their in-flight limit) wait in a bounded queue; when the queue is full the accept loops pause, so
// the kernel's backlog absorbs the burst instead of the primary's memory. Nothing accepted is ever dropped.
//
// Routing and sending are two steps: under the lock the scheduler chooses a worker for every waiting connection
// and the connection joins that worker's outbox (where it already counts as in flight); after the lock, each
// worker's outbox goes out as one message. Connections that arrive in a burst thus cost one sendmsg per worker,
// not one per connection, and the worker's reader wakes once for all of them.
//
// With several accept threads (ClusterOptions.AcceptThreads) each thread routes through its own shard: its own lock,
// waiting queue and scheduler view, so the threads never wait for one another. The shards share the ready workers
// (a copy-on-write array) and the workers' outboxes (each with its own lock); room made by an ack is offered to every
// shard.
//
// Whatever waits is bounded twice: by MaxWaiting per shard, and by the primary's fd budget (ConnectionFdBudget), which the
// accept threads respect before each accept. Sweep, once a second, closes what waits in vain: a connection whose client
// has gone, and one that has waited longer than ClusterOptions.MaxConnectionWait (no worker could take it).
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal sealed partial class HandoffDispatcher : IDisposable
{
    /// <summary>Accepted connections waiting for a worker, per shard, before its accept thread pauses.</summary>
    internal const int MaxWaiting = 4096;

    private readonly Lock _readyLock = new(); // writers of _ready
    private volatile WorkerChannel[] _ready = []; // in slot order; replaced, never changed in place
    private readonly DispatchShard[] _shards;
    private readonly IConnectionScheduler _scheduler;
    private readonly ILogger _logger;
    private int _nextRedispatchShard;
    private volatile Action<List<AcceptedConnection>>? _successor; // a new primary took over: it gets what is left
    private long _accepted;
    private long _redispatched;

    public HandoffDispatcher(IConnectionScheduler scheduler, ILogger logger, int shards = 1,
        ConnectionFdBudget? fdBudget = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        FdBudget = fdBudget ?? ConnectionFdBudget.ForThisProcess(workers: 0);
        _scheduler = scheduler;
        _logger = logger;
        _shards = new DispatchShard[shards];
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new DispatchShard(this);
        }
    }

    /// <summary>How many accepted connections the primary may hold at once (see <see cref="ConnectionFdBudget"/>).</summary>
    public ConnectionFdBudget FdBudget { get; }

    /// <summary>How many shards route connections: one per accept thread of each listener.</summary>
    public int ShardCount => _shards.Length;

    public int WaitingCount => _shards.Sum(s => s.WaitingCount);

    /// <summary>Connections accepted since the primary started.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections handed back by a worker (refused, or never acknowledged before it went away) and routed again.</summary>
    public long Redispatched => Interlocked.Read(ref _redispatched);

    /// <summary>Hands the connections to workers now, or queues them in <paramref name="shard"/> until one can take them.</summary>
    public void Dispatch(List<AcceptedConnection> connections, int shard = 0)
    {
        _shards[shard].Dispatch(connections);
        if (_ready.Length == 0)
        {
            NoWorkerReady?.Invoke();
        }
    }

    /// <summary>
    /// Called when connections arrive (or still wait, at each <see cref="Sweep"/>) and no worker is ready: the workers
    /// warming up are told to stop (WorkerPool.EndWarmUps), so that a warm-up never leaves the cluster with nobody serving.
    /// </summary>
    public Action? NoWorkerReady { get; set; }

    /// <summary>Blocks an accept thread while its shard's waiting queue is full (the kernel's backlog holds the rest).</summary>
    public void WaitForRoom(int shard = 0) => _shards[shard].WaitForRoom();

    public void AddReady(WorkerChannel worker)
    {
        lock (_readyLock)
        {
            var ready = _ready;
            if (Array.IndexOf(ready, worker) < 0)
            {
                // Kept in slot order: schedulers see candidates ordered by slot.
                var index = Array.FindIndex(ready, w => w.SlotIndex > worker.SlotIndex);
                _ready = index < 0 ? [.. ready, worker] : [.. ready[..index], worker, .. ready[index..]];
            }
        }

        Flush();
    }

    public void RemoveReady(WorkerChannel worker)
    {
        lock (_readyLock)
        {
            if (Array.IndexOf(_ready, worker) >= 0)
            {
                _ready = [.. _ready.Where(w => w != worker)];
            }
        }
    }

    /// <summary>Hands out waiting connections, in every shard, while some worker can take them.</summary>
    public void Flush()
    {
        foreach (var shard in _shards)
        {
            shard.Flush();
        }
    }

    /// <summary>Puts back connections a worker refused or never acknowledged (it went away), then routes them again.</summary>
    public void Redispatch(IEnumerable<AcceptedConnection> connections)
    {
        var shard = _shards[(uint)Interlocked.Increment(ref _nextRedispatchShard) % (uint)_shards.Length];
        var refused = new List<AcceptedConnection>();
        foreach (var connection in connections)
        {
            if (shard.Requeue(connection))
            {
                Interlocked.Increment(ref _redispatched);
            }
            else
            {
                // Stopped: a worker handed it back while draining, and no worker is left to take it (the new primary may be).
                refused.Add(connection);
            }
        }

        AfterStop(refused);
        shard.Flush();
        if (_ready.Length == 0)
        {
            NoWorkerReady?.Invoke();
        }
    }

    /// <summary>
    /// Closes the waiting connections whose client has gone, and those that have waited longer than
    /// <paramref name="maxWait"/>; logs what it closed. Returns how many it closed.
    /// </summary>
    public int Sweep(TimeSpan maxWait)
    {
        if (_ready.Length == 0 && WaitingCount > 0)
        {
            NoWorkerReady?.Invoke();
        }

        var (gone, expired) = (0, 0);
        foreach (var shard in _shards)
        {
            var (shardGone, shardExpired) = shard.Sweep(maxWait);
            gone += shardGone;
            expired += shardExpired;
        }

        if (gone > 0 || expired > 0)
        {
            ConnectionLog.WaitingConnectionsSwept(_logger, gone + expired, gone, expired, (long)maxWait.TotalSeconds);
        }

        return gone + expired;
    }

    public void Dispose()
    {
        foreach (var shard in _shards)
        {
            shard.Dispose();
        }
    }

    /// <summary>Stops routing: closes every waiting connection (the primary is shutting down), or passes it to the new primary.</summary>
    public void Stop()
    {
        var waiting = new List<AcceptedConnection>();
        foreach (var shard in _shards)
        {
            waiting.AddRange(shard.Stop());
        }

        AfterStop(waiting);
    }

    /// <summary>
    /// A new primary took over (a primary upgrade): stops routing, and passes <paramref name="successor"/> every waiting
    /// connection now and every connection a worker hands back from now on, so that none this process accepted is lost.
    /// </summary>
    public void HandOver(Action<List<AcceptedConnection>> successor)
    {
        _successor = successor;
        Stop();
    }

    /// <summary>Connections no worker of this primary will take: to the new primary if there is one, else closed (logged).</summary>
    private void AfterStop(List<AcceptedConnection> connections)
    {
        if (connections.Count == 0)
        {
            return;
        }

        if (_successor is { } successor)
        {
            successor(connections);
            return;
        }

        foreach (var connection in connections)
        {
            connection.Close();
        }

        ConnectionLog.WaitingConnectionsClosed(_logger, connections.Count);
    }
}
