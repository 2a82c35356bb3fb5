// Stopping every worker: at the first stop signal nothing starts any more and exits are expected; then each worker
// gets its last connections' first requests in, is told to drain, and is killed if it outlasts the shutdown timeout.
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Supervision;

internal sealed partial class WorkerPool
{
    /// <summary>
    /// Marks the pool as stopping: from now on no worker starts, and a worker that exits is expected. Called as soon
    /// as a stop signal arrives, before the host begins to stop: a signal to the whole process group (Ctrl+C) reaches
    /// the workers too, and their exits must not be taken for crashes.
    /// </summary>
    public void BeginStopping()
    {
        lock (_spawnLock)
        {
            if (_stopRequested)
            {
                return;
            }

            _stopRequested = true;
        }

        _stopping.Cancel();
    }

    /// <summary>Stops every worker gracefully; kills the ones still running when <paramref name="cancellationToken"/> fires.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        BeginStopping();
        var workers = Workers; // complete: no worker is added once stopping
        SupervisionLog.StoppingWorkers(_logger, workers.Count);
        foreach (var worker in workers)
        {
            worker.BeginRetiring(WorkerExitReason.Shutdown);
            if (worker.Channel is null)
            {
                worker.Kill(); // never connected: it serves nothing yet
            }
            else
            {
                worker.Channel.StopRouting();
            }
        }

        try
        {
            // The connections handed over in the last moment get their first request in before the drain begins;
            // then every worker is told to drain (a closed channel: the worker is on its way out, it got the signal too).
            var connected = workers.Where(w => w.Channel is not null).ToList();
            await Task.WhenAll(connected.Select(w => w.Channel!.WaitForLastHandoffAsync(WorkerChannel.FirstRequestGrace)))
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var worker in connected)
            {
                worker.Channel!.TrySendControl(ControlFrames.Stop());
            }

            // Each exit logged (after the worker's last lines) before the line that says they all stopped.
            await Task.WhenAll(workers.Select(w => w.ExitLogged)).WaitAsync(cancellationToken).ConfigureAwait(false);
            SupervisionLog.WorkersStopped(_logger, workers.Count);
        }
        catch (OperationCanceledException)
        {
            foreach (var worker in workers.Where(w => !w.HasExited))
            {
                SupervisionLog.KillingStraggler(_logger, worker.Id, worker.ProcessId);
                worker.Kill();
            }
        }

        // Every channel closed: what a worker held and never acknowledged has been routed on (to a primary that took over)
        // or counted as closed, before this primary goes.
        var closing = Task.WhenAll(workers.Where(w => w.Channel is not null).Select(w => w.Channel!.Closed));
        await Task.WhenAny(closing, Task.Delay(s_channelCloseGrace, CancellationToken.None)).ConfigureAwait(false);
    }

    /// <summary>How long the stop waits for the channels of exited (or killed) workers to close.</summary>
    private static readonly TimeSpan s_channelCloseGrace = TimeSpan.FromSeconds(5);
}
