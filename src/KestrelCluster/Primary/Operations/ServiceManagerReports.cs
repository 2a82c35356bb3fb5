// What the primary tells systemd, and when (ServiceManagerNotifier sends it): READY=1 once every slot has a ready
// worker, the ready count as STATUS whenever it changes, RELOADING=1 … READY=1 around a rolling restart,
// STOPPING=1 at the stop. A slot that cannot start keeps systemd waiting, and TimeoutStartSec fails the start: a
// broken deploy is not reported as ready.
using System.Globalization;
using KestrelCluster.Primary.Supervision;

namespace KestrelCluster.Primary.Operations;

internal sealed class ServiceManagerReports
{
    private readonly ServiceManagerNotifier _notifier;
    private readonly WorkerPool _pool;
    private readonly ClusterContext _context;
    private readonly Lock _lock = new();
    private bool _ready;
    private bool _reloading;
    private bool _stopping;
    private bool _held; // a new primary taking over: silent until it is the main process
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
            StartReloading(string.Create(CultureInfo.InvariantCulture, $"Rolling restart to generation {generation}")));
        rotation.RestartEnded += () => Notify(EndReloading);
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

    /// <summary>A new primary taking over (a primary upgrade): nothing is said until <see cref="Release"/>.</summary>
    public void Hold()
    {
        lock (_lock)
        {
            _held = true;
        }
    }

    /// <summary>The old primary has handed over (and named this process MAINPID): READY=1 and the status from now on.</summary>
    public void Release()
    {
        lock (_lock)
        {
            _held = false;
        }

        Notify(StatusChange);
    }

    /// <summary>A primary upgrade begins: systemd shows the service reloading until the new primary says READY=1.</summary>
    public void UpgradeStarting(int processId) => Notify(() =>
        StartReloading(string.Create(CultureInfo.InvariantCulture, $"Upgrading the primary: new primary pid {processId} starting")));

    /// <summary>The upgrade failed: this primary is ready again, as it was.</summary>
    public void UpgradeFailed() => Notify(EndReloading);

    /// <summary>The new primary takes over: it becomes the service's main process, and this one says nothing more.</summary>
    public void HandedOver(int processId) => Notify(() =>
    {
        _stopping = true;
        return string.Create(CultureInfo.InvariantCulture,
            $"MAINPID={processId}\nSTATUS=Handing over to the new primary (pid {processId})");
    });

    /// <summary>RELOADING=1 (a rolling restart, a primary upgrade): systemd shows the service reloading until READY=1.</summary>
    private string StartReloading(string status)
    {
        _reloading = true;
        return ServiceManagerNotifier.Reloading(status);
    }

    /// <summary>Reloading ends with READY=1 (systemd waits for it) and the count as it is now; nothing once stopping.</summary>
    private string? EndReloading()
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

        _lastStatus = Status().Text;
        return "READY=1\n" + _lastStatus;
    }

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
        var ready = _pool.ReadySlotCount();
        return (ready, string.Create(CultureInfo.InvariantCulture, $"STATUS={ready}/{_context.WorkerCount} workers ready"));
    }

    /// <summary>Decides under the lock what to say (null: nothing), then says it outside.</summary>
    private void Notify(Func<string?> decide)
    {
        string? message;
        lock (_lock)
        {
            message = _held ? null : decide();
        }

        if (message is not null)
        {
            _notifier.Notify(message);
        }
    }
}
