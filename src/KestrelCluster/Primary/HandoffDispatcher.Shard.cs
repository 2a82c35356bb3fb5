// One shard of the dispatcher: what one accept thread routes through (see HandoffDispatcher.cs).
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary;

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
                PrimaryLog.AcceptPaused(owner._logger, WaitingCount);
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
