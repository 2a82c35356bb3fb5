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
        pool.WorkerReady += _ => Report();
        slots.ExitRecorded += _ => Report();
        rotation.RestartStarting += generation => Send(() =>
        {
            _reloading = true;
            return ServiceManagerNotifier.Reloading(string.Create(CultureInfo.InvariantCulture,
                $"Rolling restart to generation {generation}"));
        });
        rotation.RestartEnded += () => Send(() =>
        {
            _reloading = false;
            _lastStatus = null;
            return null;
        }, thenReport: true);
    }

    /// <summary>The cluster stops: STOPPING=1, once, and nothing after it.</summary>
    public void Stopping() => Send(() =>
    {
        if (_stopping)
        {
            return null;
        }

        _stopping = true;
        return "STOPPING=1\nSTATUS=Stopping";
    });

    private void Report() => Send(() => null, thenReport: true);

    private void Send(Func<string?> change, bool thenReport = false)
    {
        string? message;
        lock (_lock)
        {
            message = change();
            if (thenReport && !_stopping && !_reloading)
            {
                var ready = _pool.LiveSlots().Count(s => s.Current is { IsReady: true, IsRetiring: false, HasExited: false });
                var status = string.Create(CultureInfo.InvariantCulture, $"STATUS={ready}/{_context.WorkerCount} workers ready");
                if (!_ready && ready >= _context.WorkerCount)
                {
                    _ready = true;
                    message = "READY=1\n" + status;
                }
                else if (status != _lastStatus)
                {
                    message = _ready && message is null && _lastStatus is null ? "READY=1\n" + status : status;
                }

                _lastStatus = status;
            }
        }

        if (message is not null)
        {
            _notifier.Notify(message);
        }
    }
}
