// Once a second, what keeps the connections the primary holds within bounds: the fd budget measured again (what else
// holds fds changes as workers come and go), waiting connections closed when their client has gone or they waited longer
// than ClusterOptions.MaxConnectionWait, and a flush, so that a worker that ran out of fds is offered connections again
// once it may have room.
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal sealed class ConnectionHousekeeping(HandoffDispatcher dispatcher, TimeSpan maxConnectionWait, ILogger logger)
{
    internal static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    /// <summary>Runs until <paramref name="stopping"/>; a fault in one round is logged and the next round runs.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(Period);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    dispatcher.FdBudget.Measure();
                    dispatcher.Sweep(maxConnectionWait);
                    dispatcher.Flush();
                }
#pragma warning disable CA1031 // housekeeping must outlive any one bad round
                catch (Exception e)
#pragma warning restore CA1031
                {
                    ConnectionLog.HousekeepingFaulted(logger, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
