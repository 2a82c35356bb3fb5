// Log messages of the primary's connection path: accept threads, the dispatcher and the workers' channels (event ids
// among the primary's 1-99; resources in ResourceLog).
using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal static partial class ConnectionLog
{
    [LoggerMessage(21, LogLevel.Error,
        "Worker {WorkerId} broke the control protocol (frame type {FrameType}, {Length} bytes); dropping it.",

        EventName = "ProtocolViolation")]
    public static partial void ProtocolViolation(ILogger logger, int workerId, byte frameType, int length);

    [LoggerMessage(22, LogLevel.Warning,
        "Control channel of worker {WorkerId} closed: {Reason}; its {Unacknowledged} unacknowledged connections go to other workers.",

        EventName = "ChannelClosedWithConnections")]
    public static partial void ChannelClosedWithConnections(ILogger logger, int workerId, string reason, int unacknowledged);

    [LoggerMessage(34, LogLevel.Debug, "Control channel of worker {WorkerId} closed: {Reason}.", EventName = "ChannelClosed")]
    public static partial void ChannelClosed(ILogger logger, int workerId, string reason);

    [LoggerMessage(23, LogLevel.Debug, "Worker {WorkerId} serves listener {ListenerId} ({EndPoint}).", EventName = "ListenerRegistered")]
    public static partial void ListenerRegistered(ILogger logger, int workerId, int listenerId, EndPoint endPoint);

    [LoggerMessage(24, LogLevel.Error,
        "Worker {WorkerId} asked for {EndPoint}, which the primary did not bind.",

        EventName = "RegisterUnmatched")]
    public static partial void RegisterUnmatched(ILogger logger, int workerId, EndPoint endPoint);

    [LoggerMessage(31, LogLevel.Warning,
        "{Count} accepted connections are waiting for a worker; pausing accept until workers catch up.",

        EventName = "AcceptPaused")]
    public static partial void AcceptPaused(ILogger logger, int count);

    [LoggerMessage(32, LogLevel.Information,
        "Closed {Count} accepted connections that were still waiting for a worker at shutdown.",

        EventName = "WaitingConnectionsClosed")]
    public static partial void WaitingConnectionsClosed(ILogger logger, int count);

    [LoggerMessage(50, LogLevel.Critical,
        "An accept thread for {EndPoint} stopped: epoll_wait failed with errno {Errno}. The endpoint's other accept threads, " +
        "if any, go on; restart the primary to get this one back.",
        EventName = "AcceptThreadFailed")]
    public static partial void AcceptThreadFailed(ILogger logger, EndPoint endPoint, int errno);

    [LoggerMessage(53, LogLevel.Error, "Connection housekeeping (the fd budget, waiting connections) failed; it starts again.",
        EventName = "HousekeepingFaulted")]
    public static partial void HousekeepingFaulted(ILogger logger, Exception exception);
}
