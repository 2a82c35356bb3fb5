// Replacing and removing live workers on purpose, without downtime: rolling restart, scaling, recycling. A
// replacement is ready before the worker it replaces stops taking connections, and a retired worker drains.
// These operations run one at a time.
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal sealed class WorkerRotation : IDisposable
{
    private readonly WorkerPool _pool;
    private readonly SlotSupervisor _supervisor;
    private readonly ClusterOptions _options;
    private readonly ClusterContext _context;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _operations = new(1, 1);

    public WorkerRotation(WorkerPool pool, SlotSupervisor supervisor, ClusterOptions options, ClusterContext context, ILogger logger)
    {
        _pool = pool;
        _supervisor = supervisor;
        _options = options;
        _context = context;
        _logger = logger;
    }

    /// <summary>Raised when a rolling restart begins, with its generation.</summary>
    public event Action<int>? RestartStarting;

    /// <summary>Raised when a rolling restart has ended, done or not.</summary>
    public event Action? RestartEnded;

    /// <summary>Rolling restart: slot by slot, a ready replacement first, then the old worker drains.</summary>
    public async Task RestartAllAsync(CancellationToken cancellationToken)
    {
        await _operations.WaitAsync(cancellationToken).ConfigureAwait(false);
        var generation = _pool.NextGeneration();
        RestartStarting?.Invoke(generation);
        try
        {
            SupervisionLog.RollingRestartStarting(_logger, generation);
            foreach (var slot in _pool.LiveSlots())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (slot.Current is { HasExited: false } current)
                {
                    if (!await ReplaceAsync(slot, current, "rolling restart", WorkerExitReason.Rolling).ConfigureAwait(false))
                    {
                        if (_pool.IsStopping)
                        {
                            return; // the primary is stopping: every worker stops with it, nothing failed
                        }

                        throw new InvalidOperationException($"Rolling restart stopped: the replacement for worker {current.Id} " +
                            $"(slot {slot.Index}) did not become ready; worker {current.Id} keeps serving.");
                    }
                }
                else
                {
                    // An empty slot (crash loop, or between respawns): a restart gives it a fresh start.
                    slot.ResetFailures();
                    if (await _supervisor.FillAsync(slot).ConfigureAwait(false) is not { } fresh)
                    {
                        return; // the primary is stopping
                    }

                    await Task.WhenAny(fresh.Ready, fresh.Exited).WaitAsync(_pool.Stopping).ConfigureAwait(false);
                }
            }

            SupervisionLog.RollingRestartDone(_logger, generation);
        }
        finally
        {
            _operations.Release();
            RestartEnded?.Invoke();
        }
    }

    /// <summary>Sets the number of slots: new slots start now; removed ones (the highest) drain and exit.</summary>
    public async Task ScaleAsync(int workers, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(workers, ClusterOptions.MaxWorkers);
        await _operations.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var live = _pool.LiveSlots();
            SupervisionLog.Scaling(_logger, live.Count, workers);
            var waits = new List<Task>();
            for (var i = live.Count; i < workers && !_pool.IsStopping; i++)
            {
                var slot = _pool.AddSlot();
                slot.ResetFailures();
                if (await _supervisor.FillAsync(slot).ConfigureAwait(false) is { } fresh)
                {
                    waits.Add(Task.WhenAny(fresh.Ready, fresh.Exited));
                }
            }

            foreach (var slot in live.Skip(workers))
            {
                slot.Removed = true;
                if (slot.Current is { } current)
                {
                    waits.Add(RetireAsync(current, "scale down", WorkerExitReason.Scale));
                }
            }

            _context.WorkerCount = workers;
            await Task.WhenAll(waits).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>Replaces a worker through the rolling path (replacement ready first), in the background; a fault is logged.</summary>
    public void Recycle(WorkerProcess worker, string reason, WorkerExitReason kind) => _ = RecycleObservedAsync(worker, reason, kind);

    public void Dispose() => _operations.Dispose();

    private async Task RecycleObservedAsync(WorkerProcess worker, string reason, WorkerExitReason kind)
    {
        try
        {
            await _operations.WaitAsync(_pool.Stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            if (_pool.SlotOf(worker) is { Removed: false } slot && slot.Current == worker && !worker.HasExited)
            {
                SupervisionLog.Recycling(_logger, worker.Id, worker.ProcessId, reason);
                await ReplaceAsync(slot, worker, reason, kind).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // a background operation: its failure is logged, and the worker keeps its slot
        catch (Exception e)
#pragma warning restore CA1031
        {
            SupervisionLog.RecycleFaulted(_logger, worker.Id, worker.Slot, e);
        }
        finally
        {
            _operations.Release();
        }
    }

    private async Task<bool> ReplaceAsync(WorkerSlot slot, WorkerProcess old, string reason, WorkerExitReason kind)
    {
        if (_supervisor.SpawnBeside(slot) is not { } fresh)
        {
            if (!_pool.IsStopping)
            {
                SupervisionLog.ReplacementFailed(_logger, old.Id, slot.Index, reason);
            }

            return false; // not started (logged), or the primary is stopping: the old worker serves on, or stops with the rest
        }

        await Task.WhenAny(fresh.Ready, fresh.Exited).ConfigureAwait(false);
        if (!fresh.IsReady)
        {
            if (!_pool.IsStopping)
            {
                SupervisionLog.ReplacementFailed(_logger, old.Id, slot.Index, reason);
            }

            return false;
        }

        slot.Current = fresh;
        await RetireAsync(old, reason, kind).ConfigureAwait(false);
        return true;
    }

    /// <summary>Stops routing to a worker, tells it to drain, and kills it if it has not exited in time.</summary>
    private async Task RetireAsync(WorkerProcess worker, string reason, WorkerExitReason kind)
    {
        if (worker.BeginRetiring(kind))
        {
            SupervisionLog.Retiring(_logger, worker.Id, worker.ProcessId, reason);
            if (worker.Channel is { } channel)
            {
                channel.StopRouting();
                await channel.WaitForLastHandoffAsync(WorkerChannel.FirstRequestGrace).ConfigureAwait(false);
            }

            // If the whole cluster began stopping meanwhile, StopAllAsync has already told every worker to drain.
            if (!_pool.IsStopping && (worker.Channel is null || !worker.Channel.TrySendControl(ControlFrames.Stop())))
            {
                worker.Kill();
            }
        }

        try
        {
            await worker.Exited.WaitAsync(_options.WorkerStopTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            SupervisionLog.KillingStraggler(_logger, worker.Id, worker.ProcessId);
            worker.Kill();
            await worker.Exited.ConfigureAwait(false);
        }
    }
}
