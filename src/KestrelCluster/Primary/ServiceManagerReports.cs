// What the primary tells systemd, and when (ServiceManagerNotifier sends it): READY=1 once every slot has a ready
// worker, the ready count as STATUS whenever it changes, RELOADING=1 … READY=1 around a rolling restart,
// STOPPING=1 at the stop. A slot that cannot start keeps systemd waiting, and TimeoutStartSec fails the start: a
// broken deploy is not reported as ready.
using System.Globalization;

namespace KestrelCluster.Primary;

internal sealed class ServiceManagerReports
{
    private readonly ServiceManagerNotifier _notifier;
    private readonly WorkerPool _pool;
    private readonly ClusterContext _context;
    private readonly Lock _lock = new();
    private bool _ready;
    private bool _reloading;
    private bool _stopping;
    private string? _lastStatus;

    public ServiceManagerReports(ServiceManagerNotifier notifier, WorkerPool pool, SlotSupervisor slots, WorkerRotation rotation,
        ClusterContext context)
    {
        _notifier = notifier;
        _pool = pool;
        _context = context;
        pool.WorkerReady += _ => Notify(() => _stopping || _reloading ? null : StatusChange());
        slots.ExitRecorded += _ => Notify(() => _stopping || _reloading ? null : StatusChange());
        rotation.RestartStarting += generation => Notify(() =>
        {
            _reloading = true;
            return ServiceManagerNotifier.Reloading(string.Create(CultureInfo.InvariantCulture,
                $"Rolling restart to generation {generation}"));
        });
        rotation.RestartEnded += () => Notify(() =>
        {
            _reloading = false;
            if (_stopping)
            {
                return null;
            }

            if (!_ready)
            {
                return StatusChange();
            }

            // Reloading ends with READY=1 (systemd waits for it), and the count as it is now.
            _lastStatus = Status().Text;
            return "READY=1\n" + _lastStatus;
        });
    }

    /// <summary>The cluster stops: STOPPING=1, once, and nothing after it.</summary>
    public void Stopping() => Notify(() =>
    {
        if (_stopping)
        {
            return null;
        }

        _stopping = true;
        return "STOPPING=1\nSTATUS=Stopping";
    });

    /// <summary>READY=1 the first time every slot is ready; afterwards the status when it changed; else nothing.</summary>
    private string? StatusChange()
    {
        var (ready, status) = Status();
        if (!_ready && ready >= _context.WorkerCount)
        {
            _ready = true;
            _lastStatus = status;
            return "READY=1\n" + status;
        }

        if (status == _lastStatus)
        {
            return null;
        }

        _lastStatus = status;
        return status;
    }

    private (int Ready, string Text) Status()
    {
        var ready = _pool.LiveSlots().Count(s => s.Current is { IsReady: true, IsRetiring: false, HasExited: false });
        return (ready, string.Create(CultureInfo.InvariantCulture, $"STATUS={ready}/{_context.WorkerCount} workers ready"));
    }

    /// <summary>Decides under the lock what to say (null: nothing), then says it outside.</summary>
    private void Notify(Func<string?> decide)
    {
        string? message;
        lock (_lock)
        {
            message = decide();
        }

        if (message is not null)
        {
            _notifier.Notify(message);
        }
    }
}
