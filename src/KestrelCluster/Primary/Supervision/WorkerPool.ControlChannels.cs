// The workers' control channels: a connection the control server has authenticated becomes the worker's
// channel; a channel that closes while its worker lives gets the worker ended (and so replaced).
using KestrelCluster.Primary.Connections;

namespace KestrelCluster.Primary.Supervision;

internal sealed partial class WorkerPool
{
    /// <summary>Raised when a worker reports that it is ready (after the pool has marked it so).</summary>
    public event Action<WorkerProcess>? WorkerReady;

    private long _warmUpsEndedAt = long.MinValue / 2;

    /// <summary>
    /// Connections wait and no worker is ready: every worker still warming up (Cluster:WarmUpPath) is told to end its warm-up
    /// and serve (each once). Without it, a warm-up under load (seconds) could outlast every ready worker — a request that
    /// crashes workers, arriving every few seconds, kept a 2-worker cluster dark 80 % of the time in the fault lab.
    /// </summary>
    public void EndWarmUps()
    {
        // Called for every accepted batch while nobody is ready: look at the workers at most every 20 ms (the dispatcher's
        // sweep calls it once a second as well, so a worker that connects in between is told then at the latest).
        var now = Environment.TickCount64;
        if (now - Volatile.Read(ref _warmUpsEndedAt) < 20)
        {
            return;
        }

        Volatile.Write(ref _warmUpsEndedAt, now);
        List<int>? told = null;
        foreach (var worker in Workers)
        {
            if (worker.Channel?.TryEndWarmUp() == true)
            {
                (told ??= []).Add(worker.Id);
            }
        }

        if (told is not null)
        {
            SupervisionLog.WarmUpsEnded(_logger, string.Join(", ", told));
        }
    }

    private WorkerProcess? FindWorker(int id)
    {
        lock (_lock)
        {
            return _workers.GetValueOrDefault(id);
        }
    }

    private void OnAuthenticated(WorkerProcess worker, System.Net.Sockets.Socket socket)
    {
        var channel = _createChannel(worker, socket);
        channel.HeartbeatReceived += worker.OnHeartbeat;
        channel.BecameReady += _ =>
        {
            _anyWorkerReady = true;
            worker.MarkReady();
            SupervisionLog.WorkerReady(_logger, worker.Id, worker.Slot, worker.ProcessId);
            WorkerReady?.Invoke(worker);
        };
        worker.Channel = channel;
        _ = RunChannelAsync(channel, worker);
    }

    private async Task RunChannelAsync(WorkerChannel channel, WorkerProcess worker)
    {
        await channel.RunAsync().ConfigureAwait(false);

        // A worker without its control channel gets no connections and could never be told to stop. It may be
        // on its way out already (a signal to the whole process group closes its channel as it exits): give it
        // a moment, then end it; it is replaced like any worker that dies.
        if (!_stopping.IsCancellationRequested && !worker.IsRetiring)
        {
            await Task.WhenAny(worker.Exited, Task.Delay(TimeSpan.FromSeconds(5), _stopping.Token)).ConfigureAwait(false);
            if (!worker.HasExited && !_stopping.IsCancellationRequested)
            {
                worker.Kill();
            }
        }
    }
}
