// Log messages of the hosting layer, whichever process it runs in (event ids 90-99).
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(90, LogLevel.Information,
        "The primary does not start the app's {Count} hosted services ({Names}): they run in the workers. " +
        "AddPrimaryHostedService runs one in the primary only, AddHostedServiceEverywhere in every process.",
        EventName = "HostedServicesLeftToWorkers")]
    public static partial void HostedServicesLeftToWorkers(ILogger logger, int count, string names);
}
