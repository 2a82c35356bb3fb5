// Log messages of a worker (event ids 100-199). The worker id is on every line through the console prefix.
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker;

internal static partial class WorkerLog
{
    [LoggerMessage(100, LogLevel.Information,
        "The primary asked this worker to stop: HTTP/1.1 responses say Connection: close for {PeriodMs} ms, then it drains.",
        EventName = "StopRequested")]
    public static partial void StopRequested(ILogger logger, long periodMs);

    [LoggerMessage(101, LogLevel.Warning,
        "The primary is gone ({Reason}); this worker stops and exits within {Delay}.",

        EventName = "PrimaryGone")]
    public static partial void PrimaryGone(ILogger logger, string reason, TimeSpan delay);

    [LoggerMessage(102, LogLevel.Debug,
        "Handed-off socket {HandoffId} is unusable ({Error}); returned to the primary.",

        EventName = "HandoffUnusable")]
    public static partial void HandoffUnusable(ILogger logger, long handoffId, SocketError error);

    [LoggerMessage(103, LogLevel.Warning,
        "This version of ASP.NET Core does not let KestrelCluster give workers Kestrel's memory pool; connections use the shared array " +
        "pool (slower).",

        EventName = "NoKestrelMemoryPool")]
    public static partial void NoKestrelMemoryPool(ILogger logger);

    [LoggerMessage(104, LogLevel.Warning,
        "This .NET runtime does not let KestrelCluster build handed-off sockets as its accept path does; each connection asks the " +
        "kernel for its addresses instead (slower).",

        EventName = "NoAcceptPathSocket")]
    public static partial void NoAcceptPathSocket(ILogger logger);

    [LoggerMessage(105, LogLevel.Information,
        "Runtime shortcuts are off ({Switch} or {Variable}): handed-off sockets use public APIs only.",

        EventName = "RuntimeInternalsDisabled")]
    public static partial void RuntimeInternalsDisabled(ILogger logger, string @switch, string variable);

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

    [LoggerMessage(109, LogLevel.Warning,
        "Worker {WorkerId} is at its open-files limit ({Limit}, {Reserve} kept free): it refused {Refused} handed-off " +
        "connections since the last report, which the primary routes to other workers, and it takes new ones again once " +
        "it has closed some. It keeps serving the connections it has.",
        EventName = "AtOpenFilesLimit")]
    public static partial void AtOpenFilesLimit(ILogger logger, int workerId, long limit, int reserve, int refused);
}
