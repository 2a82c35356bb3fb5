// Log messages of a worker's lifecycle: serving, warming up (event ids 100-199, shared with WorkerLog). The worker id is on
// every line through the console prefix.
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Lifecycle;

internal static partial class LifecycleLog
{
    [LoggerMessage(106, LogLevel.Information, "Worker {WorkerId} (slot {Slot}, pid {ProcessId}) is serving {Addresses}.",
        EventName = "Serving")]
    public static partial void Serving(ILogger logger, int workerId, int slot, int processId, string addresses);

    [LoggerMessage(107, LogLevel.Information,
        "Worker {WorkerId} warmed up: {Requests} requests to {Path} ({Protocol}) in {Milliseconds} ms, {Methods} methods compiled.",
        EventName = "WarmedUp")]
    public static partial void WarmedUp(ILogger logger, int workerId, long requests, string path, string protocol, long milliseconds,
        long methods);

    [LoggerMessage(110, LogLevel.Information,
        "Worker {WorkerId} ended its warm-up after {Milliseconds} ms ({Requests} requests): connections were waiting and no " +
        "worker was ready to take them. It serves now; its first requests compile what the warm-up did not.",
        EventName = "WarmUpEnded")]
    public static partial void WarmUpEnded(ILogger logger, int workerId, long milliseconds, long requests);

    [LoggerMessage(108, LogLevel.Warning,
        "Worker {WorkerId} could not warm up ({Reason}); it serves cold: its first requests compile the request path.",
        EventName = "WarmUpSkipped")]
    public static partial void WarmUpSkipped(ILogger logger, int workerId, string reason, Exception? exception = null);
}
