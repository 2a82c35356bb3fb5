// Keeps every slot filled: starts the first workers, watches each worker it starts (start timeout, exit), and
// replaces one that dies. Only a worker that dies before it has proven it runs counts as a crash-loop failure
// (grows the backoff, trips the breaker); one that ran and served is replaced at once. A fault in this watching is
// logged with the worker and its slot, and the slot is supervised again: a slot is never left empty unlogged. Starting a
// worker in a slot, and retrying a start refused for want of a resource, is in SlotSupervisor.Starting.cs.
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal sealed partial class SlotSupervisor
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
            SupervisionLog.SupervisionFaulted(_logger, worker.Id, slot.Index, e);
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
            SupervisionLog.WorkerStartTimedOut(_logger, worker.Id, worker.ProcessId, _options.WorkerStartTimeout);
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
            SupervisionLog.WorkerExited(_logger, worker.Id, worker.ProcessId, exitCode);
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

        SupervisionLog.ReplacingWorker(_logger, worker.Id, slot.Index, worker.ProcessId, exitStatus, (long)delay.TotalMilliseconds);
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
            SupervisionLog.NoWorkerEverStarted(_logger, slot.Index, failures.Consecutive, exitStatus);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return null;
        }

        if (failures.InWindow >= _options.CrashLoopRestarts)
        {
            SupervisionLog.CrashLoop(_logger, slot.Index, failures.InWindow, _options.CrashLoopWindow, workerId, exitStatus);
            return null;
        }

        return WorkerSlot.Backoff(failures.Consecutive);
    }
}
