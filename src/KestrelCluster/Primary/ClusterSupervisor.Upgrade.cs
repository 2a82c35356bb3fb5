// The supervisor's part in a primary upgrade (PrimaryUpgrade: this primary hands over; PrimaryTakeover: it takes over):
// the IClusterManager call, what systemd is told, and when a primary that takes over begins to accept.
namespace KestrelCluster.Primary;

internal sealed partial class ClusterSupervisor
{
    public Task<int> UpgradePrimaryAsync(CancellationToken cancellationToken = default)
    {
        EnsureClustered();
        return UpgradeThenStopAsync().WaitAsync(cancellationToken);
    }

    /// <summary>The upgrade, and this primary's stop once the new one took over (whoever asked, and whether they still wait).</summary>
    private async Task<int> UpgradeThenStopAsync()
    {
        var processId = await _upgrade.UpgradeAsync().ConfigureAwait(false);
        _lifetime.StopApplication(); // drain this primary's workers and exit: the new primary serves
        return processId;
    }

    /// <summary>At start: the upgrade's reports to systemd, and, taking over from a running primary, when to accept.</summary>
    private void WireUpgrade()
    {
        if (_reports is { } reports)
        {
            if (_takeover is not null)
            {
                reports.Hold(); // systemd hears from this process once it is the main one
            }

            _upgrade.Starting += reports.UpgradeStarting;
            _upgrade.Failed += reports.UpgradeFailed;
            _upgrade.HandedOver += reports.HandedOver;
        }

        if (_takeover is { } takeover)
        {
            _pool.ContinueWorkerIdsAfter(takeover.LastWorkerId);

            // Taking over from a running primary: accept once every slot has a ready worker, not before.
            _pool.WorkerReady += _ =>
            {
                if (_pool.ReadySlotCount() >= _context.WorkerCount)
                {
                    takeover.BeginServing(_dispatcher, () => _reports?.Release());
                }
            };
        }
    }
}
