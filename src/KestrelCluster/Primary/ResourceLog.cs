// Log messages of the primary about its resources: file descriptors, waiting connections, workers that cannot be
// started for want of a resource (event ids 80-89). Repeating conditions are logged at most once per interval.
using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal static partial class ResourceLog
{
    /// <summary>How often a condition that persists (out of fds, at the budget) is logged again.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

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

    [LoggerMessage(85, LogLevel.Warning,
        "Worker {WorkerId} (slot {Slot}) could not be started: {Error}. The slot stays empty; retrying in " +
        "{DelayMilliseconds} ms ({Attempts} failed attempts so far; a start that fails for want of a resource is retried " +
        "until it succeeds).",
        EventName = "SpawnRetrying")]
    public static partial void SpawnRetrying(ILogger logger, int workerId, int slot, string error, long delayMilliseconds, int attempts);

    [LoggerMessage(86, LogLevel.Information,
        "Worker {WorkerId} started in slot {Slot} after {Attempts} failed attempts.",
        EventName = "SpawnRecovered")]
    public static partial void SpawnRecovered(ILogger logger, int workerId, int slot, int attempts);
}
