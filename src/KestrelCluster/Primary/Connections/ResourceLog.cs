// Log messages of the primary about the resources its connections hold: file descriptors and waiting connections
// (event ids 80-84; 85-86, starts retried for want of a resource, are SupervisionLog's). Repeating conditions are logged
// at most once per LogThrottle.RepeatInterval.
using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal static partial class ResourceLog
{
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
