// The workers' control channels: a connection the control server has authenticated becomes the worker's
// channel; a channel that closes while its worker lives gets the worker ended (and so replaced).
namespace KestrelCluster.Primary;

internal sealed partial class WorkerPool
{
    /// <summary>Raised when a worker reports that it is ready (after the pool has marked it so).</summary>
    public event Action<WorkerProcess>? WorkerReady;

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
        channel.BecameReady += c =>
        {
            _anyWorkerReady = true;
            c.Worker.MarkReady();
            PrimaryLog.WorkerReady(_logger, c.Worker.Id, c.Worker.Slot, c.Worker.ProcessId);
            WorkerReady?.Invoke(c.Worker);
        };
        worker.Channel = channel;
        _ = RunChannelAsync(channel);
    }

    private async Task RunChannelAsync(WorkerChannel channel)
    {
        await channel.RunAsync().ConfigureAwait(false);

        // A worker without its control channel gets no connections and could never be told to stop. It may be
        // on its way out already (a signal to the whole process group closes its channel as it exits): give it
        // a moment, then end it; it is replaced like any worker that dies.
        if (!_stopping.IsCancellationRequested && !channel.Worker.IsRetiring)
        {
            await Task.WhenAny(channel.Worker.Exited, Task.Delay(TimeSpan.FromSeconds(5), _stopping.Token)).ConfigureAwait(false);
            if (!channel.Worker.HasExited && !_stopping.IsCancellationRequested)
            {
                channel.Worker.Kill();
            }
        }
    }
}
