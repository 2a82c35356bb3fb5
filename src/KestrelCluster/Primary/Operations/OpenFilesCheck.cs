// The open-files limit, seen at startup as HAProxy sees it: what the primary and each worker can hold with it, and a
// warning when that is less than the configured workers and Kestrel's connection limit need. The .NET runtime raises the
// soft limit to the hard one in every process it starts (CoreCLR's PAL does; the primary does it too, for native AOT), so
// what counts is the hard limit: ulimit -n, LimitNOFILE= in a systemd unit, --ulimit nofile= for a container.
using KestrelCluster.Primary.Connections;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Operations;

internal static class OpenFilesCheck
{
    /// <summary>Below this, and with no connection limit set, a worker runs out of fds under an ordinary flood.</summary>
    internal const int ComfortableLimit = 4096;

    /// <summary>Why the limit is too low for this configuration, or null when it is enough.</summary>
    public static string? Shortfall(long limit, int budget, int otherDescriptors, int workers, int maxHandoffsInFlight,
        long? kestrelMaxConnections)
    {
        var perWorker = Math.Max(0, limit - otherDescriptors - Protocol.ControlProtocol.WorkerFdReserve);
        var kestrel = kestrelMaxConnections is { } max ? $"Kestrel's MaxConcurrentConnections is {max}" :
            "Kestrel's MaxConcurrentConnections is not set";
        var capacity = $"the primary can hold {budget} accepted connections at once and each worker about {perWorker} open " +
            $"connections ({kestrel})";
        if ((long)workers * maxHandoffsInFlight > budget)
        {
            return $"{capacity}, fewer than {workers} workers × Cluster:MaxHandoffsInFlight ({maxHandoffsInFlight}) in flight";
        }

        if (kestrelMaxConnections is { } limitSet ? limitSet > perWorker : limit < ComfortableLimit)
        {
            return $"{capacity}; past that, connections wait in the primary and then in the kernel's backlog";
        }

        return null;
    }

    /// <summary>Logs the limit and what it allows (debug), and a warning when that falls short of the configuration.</summary>
    public static void Report(ILogger logger, ConnectionFdBudget budget, int workers, int maxHandoffsInFlight, long? kestrelMaxConnections)
    {
        budget.Measure();
        ConnectionLog.OpenFilesLimit(logger, budget.Limit, budget.SoftLimitBefore, budget.Budget);
        if (Shortfall(budget.Limit, budget.Budget, budget.OtherDescriptors, workers, maxHandoffsInFlight, kestrelMaxConnections)
            is { } shortfall)
        {
            ConnectionLog.OpenFilesLimitLow(logger, budget.Limit, shortfall);
        }
    }
}
