// Starting workers in slots (see SlotSupervisor.cs): the first ones, a slot filled again, a rolling restart's replacement
// beside the current worker. A start refused for want of a resource is retried until it succeeds; any other failed start
// counts as a crash-loop failure.
using KestrelCluster.Primary.Launching;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Supervision;

internal sealed partial class SlotSupervisor
{
    /// <summary>
    /// Starts one worker per slot, one after the other, off the caller's thread; stops starting as soon as the
    /// primary begins to stop (a stop signal during a start of many slow workers ends it at once). A slot whose start
    /// fails for want of a resource goes on trying in the background (see <see cref="FillAsync"/>).
    /// </summary>
    public Task StartAllAsync(int workers) => Task.Run(async () =>
    {
        for (var i = 0; i < workers && !_pool.IsStopping; i++)
        {
            var slot = _pool.AddSlot();
            var fill = FillAsync(slot); // the first attempt runs now
            if (fill.IsCompleted)
            {
                await fill.ConfigureAwait(false); // a fault in the first attempt ends the start here: the caller says why
            }
            else
            {
                _ = RetryObservedAsync(slot, fill); // retrying in the background
            }
        }
    });

    /// <summary>Waits for a slot's retried start; a fault in it is logged and the slot filled again a second later.</summary>
    private async Task RetryObservedAsync(WorkerSlot slot, Task<WorkerProcess?> fill)
    {
        try
        {
            await fill.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // whatever went wrong, the slot must be supervised again, and the fault logged
        catch (Exception e)
#pragma warning restore CA1031
        {
            SupervisionLog.SupervisionFaulted(_logger, _pool.LastWorkerId, slot.Index, e);
            if (await DelayAsync(s_faultRetryDelay).ConfigureAwait(false) && !slot.Removed && slot.Current is null)
            {
                _ = RetryObservedAsync(slot, FillAsync(slot));
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="slot"/>: starts a worker, makes it the slot's worker and watches it. A start that fails for
    /// want of a resource (EMFILE, ENFILE, EAGAIN, ENOMEM: the fork or its pipes) is retried with backoff until it succeeds or
    /// the primary stops, and counts for nothing (no crash loop: the app is not at fault); the error shows in the status
    /// meanwhile. Any other failed start counts as a failed start (backoff, crash-loop breaker). Returns the worker, or
    /// null once the primary stops, the slot is removed or given up on. The first attempt runs before this returns.
    /// </summary>
    public async Task<WorkerProcess?> FillAsync(WorkerSlot slot)
    {
        var transientFailures = 0;
        var retryLog = new Protocol.LogThrottle(LogThrottle.RepeatInterval);
        while (!slot.Removed)
        {
            WorkerProcess? worker;
            TimeSpan delay;
            try
            {
                worker = _pool.Spawn(slot);
            }
            catch (WorkerStartException e)
            {
                slot.StartError = e.Reason;
                Interlocked.Increment(ref slot.FailedStarts);
                if (e.IsTransient)
                {
                    delay = WorkerSlot.SpawnRetryDelay(++transientFailures);
                    if (retryLog.Count(out _))
                    {
                        SupervisionLog.SpawnRetrying(_logger, e.WorkerId, slot.Index, e.Reason, (long)delay.TotalMilliseconds,
                            transientFailures);
                    }
                }
                else
                {
                    SupervisionLog.SpawnFailed(_logger, e.WorkerId, slot.Index, e.InnerException ?? e);
                    if (RecordFailedStart(slot, e.WorkerId, $"could not be started: {e.Reason}", wasReady: false) is not { } backoff)
                    {
                        return null;
                    }

                    delay = backoff;
                }

                if (!await DelayAsync(delay).ConfigureAwait(false))
                {
                    return null;
                }

                continue;
            }

            if (worker is null)
            {
                return null; // the primary is stopping
            }

            if (transientFailures > 0)
            {
                SupervisionLog.SpawnRecovered(_logger, worker.Id, slot.Index, transientFailures);
            }

            slot.StartError = null;
            Volatile.Write(ref slot.FailedStarts, 0);
            slot.Current = worker;
            Watch(slot, worker);
            return worker;
        }

        return null;
    }

    /// <summary>
    /// Starts a worker beside the slot's current one (a rolling restart's replacement) and watches it; the slot's worker
    /// stays as it is. Null once the primary stops, or when the start failed (logged; the current worker serves on).
    /// </summary>
    public WorkerProcess? SpawnBeside(WorkerSlot slot)
    {
        try
        {
            if (_pool.Spawn(slot) is not { } worker)
            {
                return null;
            }

            Watch(slot, worker);
            return worker;
        }
        catch (WorkerStartException e)
        {
            SupervisionLog.SpawnFailed(_logger, e.WorkerId, slot.Index, e.InnerException ?? e);
            return null;
        }
    }

    /// <summary>Waits <paramref name="delay"/>; false if the primary began to stop meanwhile.</summary>
    private async Task<bool> DelayAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _pool.Stopping).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
