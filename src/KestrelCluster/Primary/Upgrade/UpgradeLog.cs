// Log messages of a primary upgrade, on both sides (event ids 60-79 of the primary's range).
using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Upgrade;

internal static partial class UpgradeLog
{
    [LoggerMessage(60, LogLevel.Information,
        "Primary upgrade: new primary started (pid {ProcessId}): {Command}. It takes the listening sockets over once its workers " +
        "are ready (up to {Timeout}); this primary serves until then.",
        EventName = "UpgradeStarted")]
    public static partial void Started(ILogger logger, int processId, string command, TimeSpan timeout);

    [LoggerMessage(61, LogLevel.Information,
        "Primary upgrade: the new primary (pid {ProcessId}) is ready and accepting. This primary has stopped accepting, passed it " +
        "{Waiting} waiting connections, and now drains its {Workers} workers and exits.",
        EventName = "UpgradeHandedOver")]
    public static partial void HandedOver(ILogger logger, int processId, int waiting, int workers);

    [LoggerMessage(62, LogLevel.Error, "Primary upgrade failed: {Reason}. This primary keeps serving.", EventName = "UpgradeFailed")]
    public static partial void Failed(ILogger logger, string reason);

    [LoggerMessage(63, LogLevel.Warning, "Primary upgrade not started: {Reason}", EventName = "UpgradeNotStarted")]
    public static partial void NotStarted(ILogger logger, string reason);

    [LoggerMessage(64, LogLevel.Warning,
        "Upgrade socket: connection from pid {ProcessId} (uid {UserId}) refused: it is not the new primary.",
        EventName = "UpgradeStrangerRefused")]
    public static partial void StrangerRefused(ILogger logger, int processId, uint userId);

    [LoggerMessage(65, LogLevel.Warning,
        "{Count} connections this primary accepted could not be passed to the new primary ({Reason}) and were closed.",
        EventName = "HandOverClosed")]
    public static partial void HandOverClosed(ILogger logger, int count, string reason);

    [LoggerMessage(66, LogLevel.Error,
        "The new primary (pid {ProcessId}) {Reason} as it took over: this primary has stopped accepting and drains its workers; " +
        "nothing listens on the endpoints until the service is started again.",
        EventName = "SuccessorGoneAtHandover")]
    public static partial void SuccessorGoneAtHandover(ILogger logger, int processId, string reason);

    [LoggerMessage(70, LogLevel.Information,
        "Taking over {EndPoint} from primary {ProcessId}: the same listening socket, never closed.", EventName = "ListenerTakenOver")]
    public static partial void ListenerTakenOver(ILogger logger, EndPoint endPoint, int processId);

    [LoggerMessage(71, LogLevel.Information, "Binding {EndPoint}: the previous primary (pid {ProcessId}) did not listen on it.",
        EventName = "NewEndpoint")]
    public static partial void NewEndpoint(ILogger logger, EndPoint endPoint, int processId);

    [LoggerMessage(72, LogLevel.Information,
        "Every worker is ready: accepting, beside primary {ProcessId} until it stops.", EventName = "AcceptingBesidePrevious")]
    public static partial void AcceptingBesidePrevious(ILogger logger, int processId);

    [LoggerMessage(73, LogLevel.Information,
        "Primary {ProcessId} has stopped accepting and drains its workers: this process (pid {OwnProcessId}) is the primary now.",
        EventName = "TookOver")]
    public static partial void TookOver(ILogger logger, int processId, int ownProcessId);

    [LoggerMessage(74, LogLevel.Warning,
        "The previous primary (pid {ProcessId}) went away before it handed over (it {Reason}): this process serves alone.",
        EventName = "PreviousPrimaryGone")]
    public static partial void PreviousPrimaryGone(ILogger logger, int processId, string reason);

    [LoggerMessage(75, LogLevel.Debug, "{Count} connections received from the previous primary.", EventName = "ConnectionsReceived")]
    public static partial void ConnectionsReceived(ILogger logger, int count);
}
