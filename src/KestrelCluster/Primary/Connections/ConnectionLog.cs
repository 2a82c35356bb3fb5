// Log messages of the primary's connection path: accept threads, the dispatcher, the workers' channels, and the resources
// the connections hold (event ids among the primary's 1-99; 85-86, starts retried for want of a resource, are SupervisionLog's).
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

    // The resources the connections hold: file descriptors and waiting connections (80-84). A condition that repeats is
    // logged at most once per LogThrottle.RepeatInterval.
    [LoggerMessage(80, LogLevel.Warning,
        "Closed {Count} accepted connections that waited for a worker in vain: {Gone} whose client had gone, {Expired} that " +
        "waited longer than {MaxWaitSeconds} s (Cluster:MaxConnectionWait) because no worker could take them.",
        EventName = "WaitingConnectionsSwept")]
    public static partial void WaitingConnectionsSwept(ILogger logger, int count, int gone, int expired, long maxWaitSeconds);

    [LoggerMessage(81, LogLevel.Warning,
        "The primary holds {Held} accepted connections, as many as its open-files limit allows ({Limit}: {Other} fds in use " +
        "besides them, {Reserve} kept free to start workers); it accepts again as workers take them, and new connections " +
        "wait in the kernel's backlog meanwhile (paused {Times}× since the last report).",
        EventName = "AcceptAtFdBudget")]
    public static partial void AcceptAtFdBudget(ILogger logger, int held, long limit, int other, int reserve, int times);

    [LoggerMessage(82, LogLevel.Warning,
        "Accepting on {EndPoint} failed: {Error} ({Times}× since the last report); the connections wait in the " +
        "kernel's backlog, and accepting retries in {DelayMilliseconds} ms.",
        EventName = "AcceptOutOfDescriptors")]
    public static partial void AcceptOutOfDescriptors(ILogger logger, EndPoint endPoint, string error, int times, long delayMilliseconds);

    [LoggerMessage(83, LogLevel.Warning,
        "The open-files limit is {Limit}: {Need}. Raise it where the process starts (LimitNOFILE= in a systemd unit, " +
        "ulimit -n in a shell, --ulimit nofile= for a container).",
        EventName = "OpenFilesLimitLow")]
    public static partial void OpenFilesLimitLow(ILogger logger, long limit, string need);

    [LoggerMessage(84, LogLevel.Debug,
        "Open-files limit {Limit} (raised from {Before}); the primary holds at most {Budget} accepted connections at once.",
        EventName = "OpenFilesLimit")]
    public static partial void OpenFilesLimit(ILogger logger, long limit, long before, int budget);
}
