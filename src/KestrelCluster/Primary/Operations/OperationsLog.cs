// Log messages of the primary's operations: the admin socket (event ids among the primary's 1-99).
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Operations;

internal static partial class OperationsLog
{
    [LoggerMessage(41, LogLevel.Information, "Admin command '{Command}' from pid {ProcessId}.", EventName = "AdminCommand")]
    public static partial void AdminCommand(ILogger logger, string command, int processId);

    [LoggerMessage(42, LogLevel.Warning, "Admin connection from pid {ProcessId} (uid {UserId}) refused: {Reason}.",
        EventName = "AdminRejected")]
    public static partial void AdminRejected(ILogger logger, int processId, uint userId, string reason);

    [LoggerMessage(43, LogLevel.Warning, "The admin socket could not be opened ({Path}); kestrel-cluster cannot reach this primary.",
        EventName = "AdminUnavailable")]
    public static partial void AdminUnavailable(ILogger logger, string path, Exception exception);
}
