// One shard of the dispatcher: what one accept thread routes through (see HandoffDispatcher.cs).
using System.Diagnostics;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Connections;

internal sealed partial class HandoffDispatcher
{
    /// <summary>One accept thread's routing: its lock, its waiting queue, its view for the scheduler.</summary>
    private sealed class DispatchShard(HandoffDispatcher owner) : IDisposable
    {
        private readonly Lock _lock = new(); // lock order: this, a worker channel's, its outbox's, its writer's
        private readonly Queue<AcceptedConnection> _waiting = new();
        // The scheduler's view, rebuilt for each choice (under the lock): the candidates and, at the same index, their channels.
        private WorkerCandidate[] _candidates = new WorkerCandidate[8];
        private WorkerChannel[] _candidateChannels = new WorkerChannel[8];
        private readonly ManualResetEventSlim _room = new(initialState: true);
        private bool _stopped; // under _lock

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

        public void Dispatch(List<AcceptedConnection> connections)
        {
            var stopped = false;
            lock (_lock)
            {
                if (_stopped)
                {
                    stopped = true;
                }
                else
                {
                    foreach (var connection in connections)
                    {
                        _waiting.Enqueue(connection);
                    }

                    Interlocked.Add(ref owner._accepted, connections.Count);
                    if (_waiting.Count >= MaxWaiting)
                    {
                        _room.Reset();
                    }
                }
            }

            if (stopped)
            {
                owner.AfterStop(connections); // accepted in the moment the primary stopped
                return;
            }

            Flush();
        }

        public void WaitForRoom()
        {
            if (!_room.IsSet)
            {
                ConnectionLog.AcceptPaused(owner._logger, WaitingCount);
                _room.Wait();
            }
        }

        /// <summary>Queues a connection handed back; false once stopped (the caller closes it).</summary>
        public bool Requeue(AcceptedConnection connection)
        {
            lock (_lock)
            {
                if (_stopped)
                {
                    return false;
                }

                _waiting.Enqueue(connection);
                return true;
            }
        }

        public void Flush()
        {
            while (true)
            {
                WorkerChannel[] workers;
                lock (_lock)
                {
                    // Every worker chosen below is in this array, even if it leaves the ready list before its outbox is sent.
                    workers = owner._ready;
                    var routed = 0;
                    while (_waiting.Count > 0 && routed < ControlFrames.MaxFdsPerMessage && Choose(workers, _waiting.Peek()) is { } worker)
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
                }

                foreach (var worker in workers)
                {
                    // A worker that cannot take its outbox (full, or gone) hands it back through Redispatch.
                    worker.SendOutbox();
                }
            }
        }

        /// <summary>Refuses connections from now on and returns the waiting ones (the caller closes or passes them on).</summary>
        public List<AcceptedConnection> Stop()
        {
            lock (_lock)
            {
                _stopped = true;
                List<AcceptedConnection> waiting = [.. _waiting];
                _waiting.Clear();
                _room.Set();
                return waiting;
            }
        }

        /// <summary>
        /// Closes the waiting connections whose client has hung up, and those waiting longer than <paramref name="maxWait"/>;
        /// the rest keep their place in the queue. Returns how many of each it closed.
        /// </summary>
        public (int Gone, int Expired) Sweep(TimeSpan maxWait)
        {
            List<AcceptedConnection>? gone = null;
            List<AcceptedConnection>? expired = null;
            lock (_lock)
            {
                if (_waiting.Count == 0)
                {
                    return (0, 0);
                }

                // A connection in the queue is open: it is closed only after it leaves the queue (here, or at the stop).
                var waiting = _waiting.ToArray();
                var fds = new int[waiting.Length];
                var hungUp = new bool[waiting.Length];
                for (var i = 0; i < waiting.Length; i++)
                {
                    fds[i] = waiting[i].Fd;
                }

                var known = Libc.FindHungUp(fds, hungUp);
                _waiting.Clear();
                for (var i = 0; i < waiting.Length; i++)
                {
                    var connection = waiting[i];
                    if (known && hungUp[i])
                    {
                        (gone ??= []).Add(connection);
                    }
                    else if (Stopwatch.GetElapsedTime(connection.AcceptedAt) > maxWait)
                    {
                        (expired ??= []).Add(connection);
                    }
                    else
                    {
                        _waiting.Enqueue(connection);
                    }
                }

                if (!_room.IsSet && _waiting.Count < MaxWaiting / 2)
                {
                    _room.Set();
                }
            }

            // A client that has gone gets nothing; one that waited in vain is told, if it can be (see WaitedInVain).
            gone?.ForEach(c => c.Close());
            expired?.ForEach(WaitedInVain.Close);
            return (gone?.Count ?? 0, expired?.Count ?? 0);
        }

        public void Dispose() => _room.Dispose();

        /// <summary>Asks the scheduler to choose among the workers that can take the connection now. Under the lock.</summary>
        private WorkerChannel? Choose(WorkerChannel[] ready, AcceptedConnection connection)
        {
            var count = 0;
            foreach (var worker in ready)
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

            var index = owner._scheduler.Choose(new ScheduledConnection(connection), _candidates.AsSpan(0, count));
            var chosen = (uint)index < (uint)count ? _candidateChannels[index] : null;
            Array.Clear(_candidateChannels, 0, count); // no channel kept alive by the buffer after its worker is gone
            return chosen;
        }
    }
}
