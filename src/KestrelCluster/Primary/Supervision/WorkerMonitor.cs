// Watches the workers' heartbeats: kills the silent ones (hung), reports thread-pool starvation, and asks
// for a graceful recycle when a worker passes its request or memory limit.
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal sealed class WorkerMonitor
{
    /// <summary>Heartbeat lateness that counts as thread-pool starvation.</summary>
    private const int StarvationLagMilliseconds = 1_000;

    private readonly WorkerPool _pool;
    private readonly WorkerRotation _rotation;
    private readonly ClusterOptions _options;
    private readonly ILogger _logger;

    public WorkerMonitor(WorkerPool pool, WorkerRotation rotation, ClusterOptions options, ILogger logger)
    {
        _pool = pool;
        _rotation = rotation;
        _options = options;
        _logger = logger;
    }

    /// <summary>Runs until <paramref name="stopping"/>; a fault in a check is logged and the monitor goes on.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        var period = TimeSpan.FromTicks(Math.Min(_options.HeartbeatInterval.Ticks, TimeSpan.FromSeconds(1).Ticks));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    foreach (var worker in _pool.Workers)
                    {
                        Check(worker);
                    }
                }
#pragma warning disable CA1031 // the monitor must outlive any one bad check
                catch (Exception e)
#pragma warning restore CA1031
                {
                    SupervisionLog.MonitorFaulted(_logger, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Check(WorkerProcess worker)
    {
        if (!worker.IsReady || worker.IsRetiring || worker.HasExited)
        {
            return; // a starting worker is governed by WorkerStartTimeout, a draining one by WorkerStopTimeout
        }

        var silentFor = worker.SilentFor;
        if (silentFor > _options.WorkerTimeout)
        {
            _pool.KillHung(worker);
            return;
        }

        // A starved thread pool delays the heartbeat itself: say so long before WorkerTimeout ends the worker.
        var overdueAfter = TimeSpan.FromTicks(Math.Max(_options.HeartbeatInterval.Ticks * 3, TimeSpan.FromSeconds(2).Ticks));
        if (silentFor > overdueAfter && silentFor < _options.WorkerTimeout)
        {
            if (!worker.SilenceReported)
            {
                worker.SilenceReported = true;
                SupervisionLog.HeartbeatOverdue(_logger, worker.Id, worker.ProcessId, silentFor, _options.WorkerTimeout);
            }
        }
        else
        {
            worker.SilenceReported = false;
        }

        var lagged = worker.TakeMostLaggedHeartbeat();
        if (lagged.ThreadPoolLagMilliseconds >= StarvationLagMilliseconds)
        {
            if (!worker.StarvationReported)
            {
                worker.StarvationReported = true;
                SupervisionLog.ThreadPoolStarvation(_logger, worker.Id, worker.ProcessId, lagged.ThreadPoolLagMilliseconds,
                    lagged.PendingWorkItems);
            }
        }
        else
        {
            worker.StarvationReported = false;
        }

        var heartbeat = worker.LastHeartbeat;
        if (worker.RecycleAfterRequests > 0 && heartbeat.Requests >= worker.RecycleAfterRequests && worker.TryRequestRecycle())
        {
            _rotation.Recycle(worker, $"served {heartbeat.Requests} requests (limit {worker.RecycleAfterRequests})",
                WorkerExitReason.Requests);
        }
        else if (_options.MaxWorkerMemory > 0 && heartbeat.WorkingSetBytes > _options.MaxWorkerMemory && worker.TryRequestRecycle())
        {
            _rotation.Recycle(worker, $"uses {heartbeat.WorkingSetBytes / (1024 * 1024)} MiB (limit " +
                $"{_options.MaxWorkerMemory / (1024 * 1024)} MiB)", WorkerExitReason.Memory);
        }
    }
}
