// Log messages of a worker's connection path: its control channel and the connections handed to it (event ids 100-199,
// shared with LifecycleLog). The worker id is on every line through the console prefix.
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Connections;

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

    [LoggerMessage(109, LogLevel.Warning,
        "Worker {WorkerId} is at its open-files limit ({Limit}, {Reserve} kept free): it refused {Refused} handed-off " +
        "connections since the last report, which the primary routes to other workers, and it takes new ones again once " +
        "it has closed some. It keeps serving the connections it has.",
        EventName = "AtOpenFilesLimit")]
    public static partial void AtOpenFilesLimit(ILogger logger, int workerId, long limit, int reserve, int refused);
}
