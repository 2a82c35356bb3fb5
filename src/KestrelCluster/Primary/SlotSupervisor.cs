// Keeps every slot filled: starts the first workers, watches each worker it starts (start timeout, exit), and
// replaces one that dies. Only a worker that dies before it has proven it runs counts as a crash-loop failure
// (grows the backoff, trips the breaker); one that ran and served is replaced at once. A fault in this watching is
// logged with the worker and its slot, and the slot is supervised again: a slot is never left empty unlogged.
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed class SlotSupervisor
{
    /// <summary>Failed starts in a row, with no worker ever ready, after which the primary gives up.</summary>
    private const int FirstStartAttempts = 3;

    private static readonly TimeSpan s_faultRetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>How long an exited worker's last output may take to reach the console before its exit is handled.</summary>
    private static readonly TimeSpan s_outputGrace = TimeSpan.FromMilliseconds(500);

    private readonly WorkerPool _pool;
    private readonly ClusterOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;

    public SlotSupervisor(WorkerPool pool, ClusterOptions options, IHostApplicationLifetime lifetime, ILogger logger)
    {
        _pool = pool;
        _options = options;
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>A test seam: runs when a watched worker has exited, before it is handled (tests make it throw).</summary>
    internal Action<WorkerProcess>? OnWorkerExited { get; set; }

    /// <summary>Raised for every worker that exits, with why (the restarts metric counts these).</summary>
    public event Action<WorkerExit>? ExitRecorded;

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
            PrimaryLog.SupervisionFaulted(_logger, _pool.LastWorkerId, slot.Index, e);
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
        var retryLog = new Protocol.LogThrottle(ResourceLog.Interval);
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
                        ResourceLog.SpawnRetrying(_logger, e.WorkerId, slot.Index, e.Reason, (long)delay.TotalMilliseconds,
                            transientFailures);
                    }
                }
                else
                {
                    PrimaryLog.SpawnFailed(_logger, e.WorkerId, slot.Index, e.InnerException ?? e);
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
                ResourceLog.SpawnRecovered(_logger, worker.Id, slot.Index, transientFailures);
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
            PrimaryLog.SpawnFailed(_logger, e.WorkerId, slot.Index, e.InnerException ?? e);
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

    private void Watch(WorkerSlot slot, WorkerProcess worker) => _ = WatchObservedAsync(slot, worker);

    private async Task WatchObservedAsync(WorkerSlot slot, WorkerProcess worker)
    {
        try
        {
            await WatchAsync(slot, worker).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // whatever went wrong, the slot must be supervised again, and the fault logged
        catch (Exception e)
#pragma warning restore CA1031
        {
            PrimaryLog.SupervisionFaulted(_logger, worker.Id, slot.Index, e);
            if (worker.HasExited)
            {
                worker.MarkExitLogged(); // as far as it will be: nothing waits for it in vain
            }

            await ResuperviseAsync(slot, worker).ConfigureAwait(false);
        }
    }

    /// <summary>After a fault: the worker still runs → watch it again; it is gone and its slot empty → fill the slot.</summary>
    private async Task ResuperviseAsync(WorkerSlot slot, WorkerProcess worker)
    {
        try
        {
            await Task.Delay(s_faultRetryDelay, _pool.Stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (slot.Removed)
        {
            return;
        }

        if (!worker.HasExited)
        {
            Watch(slot, worker);
        }
        else if (slot.Current is null || slot.Current == worker)
        {
            _pool.Remove(worker);
            slot.Current = null;
            await FillAsync(slot).ConfigureAwait(false);
        }
    }

    private async Task WatchAsync(WorkerSlot slot, WorkerProcess worker)
    {
        await Task.WhenAny(worker.Ready, worker.Exited, Task.Delay(_options.WorkerStartTimeout, _pool.Stopping)).ConfigureAwait(false);
        if (!worker.IsReady && !worker.HasExited && !_pool.IsStopping)
        {
            PrimaryLog.WorkerStartTimedOut(_logger, worker.Id, worker.ProcessId, _options.WorkerStartTimeout);
            worker.SetExitReason(WorkerExitReason.StartTimeout);
            worker.Kill();
        }

        var exitCode = await worker.Exited.ConfigureAwait(false);

        // What it wrote last (a crash report) comes before the line that says it exited; a grandchild holding the pipe
        // open does not hold this up for long.
        await Task.WhenAny(worker.OutputClosed, Task.Delay(s_outputGrace)).ConfigureAwait(false);
        if (_pool.IsStopping)
        {
            worker.SetExitReason(WorkerExitReason.Shutdown);
        }

        slot.LastExit = new WorkerExit(worker.Id, worker.ProcessId, exitCode, worker.ExitReason, DateTimeOffset.UtcNow);
        ExitRecorded?.Invoke(slot.LastExit);
        OnWorkerExited?.Invoke(worker);
        _pool.Remove(worker);
        worker.Channel?.Close("the worker process exited");
        if (_pool.IsStopping || worker.IsRetiring || slot.Removed || slot.Current != worker)
        {
            // Expected: shutdown, a retired worker, or a replacement that failed to start (its restarter reports it).
            PrimaryLog.WorkerExited(_logger, worker.Id, worker.ProcessId, exitCode);
            worker.MarkExitLogged();
            return;
        }

        worker.MarkExitLogged(); // what RespawnAsync logs is about the replacement
        await RespawnAsync(slot, worker, WorkerSlot.DescribeExit(exitCode)).ConfigureAwait(false);
    }

    private async Task RespawnAsync(WorkerSlot slot, WorkerProcess worker, string exitStatus)
    {
        slot.Current = null;
        TimeSpan delay;
        if (worker.HasProvenItself(_options.MinWorkerUptime))
        {
            // It ran and served: killed from outside, or a crash that is not a loop. Replace it now, and forget the backoff.
            slot.ResetBackoff();
            delay = TimeSpan.Zero;
        }
        else if (RecordFailedStart(slot, worker.Id, exitStatus, worker.IsReady) is { } backoff)
        {
            delay = backoff;
        }
        else
        {
            return;
        }

        PrimaryLog.ReplacingWorker(_logger, worker.Id, slot.Index, worker.ProcessId, exitStatus, (long)delay.TotalMilliseconds);
        if (delay > TimeSpan.Zero && !await DelayAsync(delay).ConfigureAwait(false))
        {
            return;
        }

        if (!slot.Removed && slot.Current is null)
        {
            await FillAsync(slot).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Counts a worker of <paramref name="slot"/> that failed before it proved it runs; returns the backoff before the next
    /// start, or null when the primary gives up on the slot (logged): no worker has ever started (the app cannot start,
    /// and the primary stops with the error), or the crash-loop breaker tripped.
    /// </summary>
    private TimeSpan? RecordFailedStart(WorkerSlot slot, int workerId, string exitStatus, bool wasReady)
    {
        var failures = slot.RecordFailure(_options.CrashLoopWindow);
        if (!_pool.AnyWorkerReady && !wasReady && failures.Consecutive >= FirstStartAttempts)
        {
            // The app cannot start at all (it throws at startup): looping would hide that. Stop with the error.
            PrimaryLog.NoWorkerEverStarted(_logger, slot.Index, failures.Consecutive, exitStatus);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return null;
        }

        if (failures.InWindow >= _options.CrashLoopRestarts)
        {
            PrimaryLog.CrashLoop(_logger, slot.Index, failures.InWindow, _options.CrashLoopWindow, workerId, exitStatus);
            return null;
        }

        return WorkerSlot.Backoff(failures.Consecutive);
    }
}
