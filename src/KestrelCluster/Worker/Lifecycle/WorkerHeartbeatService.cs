// The worker's heartbeat: every HeartbeatInterval, from a thread-pool timer (so a starved or deadlocked pool
// shows up as silence), it tells the primary it is alive, with its request count, memory, and how late the
// timer ran — the thread-pool starvation signal. The timer is one-shot, re-armed after each beat: a periodic one
// would queue a callback per period while the pool is starved, and the burst of punctual beats that follows the
// late one would hide it.
using System.Diagnostics;
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Worker.Lifecycle;

internal sealed class WorkerHeartbeatService(WorkerControlChannel channel, WorkerRequestCounter requests,
    IOptions<ClusterOptions> options) : IHostedService, IDisposable
{
    private readonly TimeSpan _interval = options.Value.HeartbeatInterval;
    private Timer? _timer;
    private long _armedAt;
    private volatile bool _stopped;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _armedAt = Stopwatch.GetTimestamp();
        _timer = new Timer(_ => Beat(), null, _interval, Timeout.InfiniteTimeSpan);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopped = true;
        _timer?.Change(Timeout.Infinite, Timeout.Infinite);
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    private void Beat()
    {
        var now = Stopwatch.GetTimestamp();
        var late = Stopwatch.GetElapsedTime(_armedAt, now) - _interval;
        var heartbeat = new WorkerHeartbeat(
            requests.Count,
            Environment.WorkingSet,
            (int)Math.Clamp(late.TotalMilliseconds, 0, int.MaxValue),
            (int)Math.Min(ThreadPool.PendingWorkItemCount, int.MaxValue),
            Environment.CpuUsage.TotalTime,
            GC.GetTotalMemory(forceFullCollection: false));
        channel.SendHeartbeat(heartbeat);

        if (!_stopped)
        {
            _armedAt = Stopwatch.GetTimestamp();
            _timer?.Change(_interval, Timeout.InfiniteTimeSpan);
        }
    }
}
