// Log messages of the primary as a whole: the platform, the configuration and the endpoints it serves itself. Each room logs
// its own (ConnectionLog, SupervisionLog, OperationsLog, UpgradeLog); the primary's event ids are 1-99.
using System.Net;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal static partial class PrimaryLog
{
    [LoggerMessage(7, LogLevel.Critical, "Workers cannot be started; the primary stops.", EventName = "CannotStartWorkers")]
    public static partial void CannotStartWorkers(ILogger logger, Exception exception);

    [LoggerMessage(13, LogLevel.Warning,
        "KestrelCluster cannot pass sockets between processes on this platform ({Platform}); serving in this one process with Kestrel's " +
        "sockets transport.",

        EventName = "PlatformUnsupported")]
    public static partial void PlatformUnsupported(ILogger logger, string platform);

    [LoggerMessage(38, LogLevel.Warning,
        "Cluster:Workers is {Workers}, more than 4 per CPU ({Cpus} CPUs): the workers will compete for the cores, and each one is a " +
        "whole process's memory. About one worker per CPU is usual.",

        EventName = "ManyWorkers")]
    public static partial void ManyWorkers(ILogger logger, int workers, int cpus);

    [LoggerMessage(46, LogLevel.Information,
        "Running in one process under dotnet watch: hot reload changes this process only, and workers would serve the last build. " +
        "Set Cluster:WorkersUnderDotnetWatch=true to run workers anyway.",
        EventName = "StandaloneUnderWatch")]
    public static partial void StandaloneUnderWatch(ILogger logger);

    [LoggerMessage(47, LogLevel.Warning,
        "Hot reload changed the primary only: the workers serve the last build. Restart dotnet watch (or build, then kill -HUP " +
        "{ProcessId}) to serve the change.",
        EventName = "HotReloadNotInWorkers")]
    public static partial void HotReloadNotInWorkers(ILogger logger, int processId);

    [LoggerMessage(33, LogLevel.Warning,
        "Endpoint {EndPoint} ({Type}) cannot be handed to workers; the primary serves it itself with Kestrel's sockets transport.",

        EventName = "EndpointServedByPrimary")]
    public static partial void EndpointServedByPrimary(ILogger logger, EndPoint endPoint, string type);

    [LoggerMessage(54, LogLevel.Warning,
        "Endpoint {EndPoint} cannot have a socket per worker (Scheduling=ReusePort takes TCP endpoints the primary binds; not a Unix " +
            "domain socket nor one systemd passed): the primary accepts on it and hands its connections to the workers in turn.",
        EventName = "EndpointNotReusePort")]
    public static partial void EndpointNotReusePort(ILogger logger, EndPoint endPoint);
}
