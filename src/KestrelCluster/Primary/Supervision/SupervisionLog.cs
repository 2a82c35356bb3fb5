// Log messages of the supervision of the workers: starts, exits, replacements, rolling restarts, signals, heartbeats
// (event ids among the primary's 1-99; starts retried for want of a resource are 85-86).
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal static partial class SupervisionLog
{
    [LoggerMessage(1, LogLevel.Information, "Starting {Count} workers: {FileName} {Arguments}", EventName = "StartingWorkers")]
    public static partial void StartingWorkers(ILogger logger, int count, string fileName, string arguments);

    [LoggerMessage(2, LogLevel.Information, "Worker {WorkerId} started (slot {Slot}, pid {ProcessId}).", EventName = "WorkerStarted")]
    public static partial void WorkerStarted(ILogger logger, int workerId, int slot, int processId);

    [LoggerMessage(3, LogLevel.Information,
        "Worker {WorkerId} is ready (slot {Slot}, pid {ProcessId}); routing connections to it.",

        EventName = "WorkerReady")]
    public static partial void WorkerReady(ILogger logger, int workerId, int slot, int processId);

    [LoggerMessage(4, LogLevel.Information, "Worker {WorkerId} (pid {ProcessId}) exited with code {ExitCode}.", EventName = "WorkerExited")]
    public static partial void WorkerExited(ILogger logger, int workerId, int processId, int exitCode);

    [LoggerMessage(5, LogLevel.Warning,
        "Worker {WorkerId} (slot {Slot}, pid {ProcessId}) exited unexpectedly: {ExitStatus}; starting a replacement in " +
        "{DelayMilliseconds} ms.",

        EventName = "ReplacingWorker")]
    public static partial void ReplacingWorker(ILogger logger, int workerId, int slot, int processId, string exitStatus,
        long delayMilliseconds);

    [LoggerMessage(6, LogLevel.Error, "Worker {WorkerId} (slot {Slot}) could not be started.", EventName = "SpawnFailed")]
    public static partial void SpawnFailed(ILogger logger, int workerId, int slot, Exception exception);

    [LoggerMessage(8, LogLevel.Critical,
        "No worker has ever started: the worker in slot {Slot} failed {Failures} times in a row, last {ExitStatus}. The app probably " +
        "throws at startup (its error is above). The primary stops.",

        EventName = "NoWorkerEverStarted")]
    public static partial void NoWorkerEverStarted(ILogger logger, int slot, int failures, string exitStatus);

    [LoggerMessage(9, LogLevel.Error,
        "Worker {WorkerId} (pid {ProcessId}) was not ready within {Timeout}; killing it.",

        EventName = "WorkerStartTimedOut")]
    public static partial void WorkerStartTimedOut(ILogger logger, int workerId, int processId, TimeSpan timeout);

    [LoggerMessage(10, LogLevel.Information, "Stopping the workers gracefully ({Count} running).", EventName = "StoppingWorkers")]
    public static partial void StoppingWorkers(ILogger logger, int count);

    [LoggerMessage(11, LogLevel.Information, "Every worker has stopped ({Count}).", EventName = "WorkersStopped")]
    public static partial void WorkersStopped(ILogger logger, int count);

    [LoggerMessage(12, LogLevel.Warning,
        "Worker {WorkerId} (pid {ProcessId}) did not stop within the shutdown timeout; killing it.",

        EventName = "KillingStraggler")]
    public static partial void KillingStraggler(ILogger logger, int workerId, int processId);

    [LoggerMessage(14, LogLevel.Error,
        "Slot {Slot} crash-looped: {Failures} failures within {Window}; not restarting it until a rolling restart or scale-up. Its last " +
        "worker ({WorkerId}) ended: {ExitStatus}.",

        EventName = "CrashLoop")]
    public static partial void CrashLoop(ILogger logger, int slot, int failures, TimeSpan window, int workerId, string exitStatus);

    [LoggerMessage(15, LogLevel.Error,
        "Worker {WorkerId} (pid {ProcessId}) sent no heartbeat for {Silent} (WorkerTimeout {Timeout}): hung; killing it.",

        EventName = "WorkerHung")]
    public static partial void WorkerHung(ILogger logger, int workerId, int processId, TimeSpan silent, TimeSpan timeout);

    [LoggerMessage(16, LogLevel.Warning,
        "Worker {WorkerId} (pid {ProcessId}) thread pool is starving: its heartbeat ran {LagMilliseconds} ms late with " +
        "{PendingWorkItems} work items queued.",

        EventName = "ThreadPoolStarvation")]
    public static partial void ThreadPoolStarvation(ILogger logger, int workerId, int processId, int lagMilliseconds, int pendingWorkItems);

    [LoggerMessage(35, LogLevel.Warning,
        "Worker {WorkerId} (pid {ProcessId}) has sent no heartbeat for {Silent}: its thread pool may be starved or the process stopped. " +
        "It is killed if the silence reaches WorkerTimeout ({Timeout}).",

        EventName = "HeartbeatOverdue")]
    public static partial void HeartbeatOverdue(ILogger logger, int workerId, int processId, TimeSpan silent, TimeSpan timeout);

    [LoggerMessage(17, LogLevel.Information,
        "Rolling restart (generation {Generation}) starting: each worker is replaced once its replacement is ready.",

        EventName = "RollingRestartStarting")]
    public static partial void RollingRestartStarting(ILogger logger, int generation);

    [LoggerMessage(18, LogLevel.Information, "Rolling restart (generation {Generation}) done.", EventName = "RollingRestartDone")]
    public static partial void RollingRestartDone(ILogger logger, int generation);

    [LoggerMessage(19, LogLevel.Error,
        "The replacement for worker {WorkerId} (slot {Slot}, {Reason}) did not become ready; worker {WorkerId} keeps serving.",

        EventName = "ReplacementFailed")]
    public static partial void ReplacementFailed(ILogger logger, int workerId, int slot, string reason);

    [LoggerMessage(25, LogLevel.Information,
        "Retiring worker {WorkerId} (pid {ProcessId}, {Reason}): no new connections; it drains and exits.",

        EventName = "Retiring")]
    public static partial void Retiring(ILogger logger, int workerId, int processId, string reason);

    [LoggerMessage(26, LogLevel.Information, "Recycling worker {WorkerId} (pid {ProcessId}): {Reason}.", EventName = "Recycling")]
    public static partial void Recycling(ILogger logger, int workerId, int processId, string reason);

    [LoggerMessage(27, LogLevel.Information, "Scaling from {From} to {To} workers.", EventName = "Scaling")]
    public static partial void Scaling(ILogger logger, int from, int to);

    [LoggerMessage(28, LogLevel.Error, "{Operation} failed.", EventName = "OperationFailed")]
    public static partial void OperationFailed(ILogger logger, string operation, Exception exception);

    [LoggerMessage(29, LogLevel.Information, "{Signal} received: {Operation}.", EventName = "SignalReceived")]
    public static partial void SignalReceived(ILogger logger, string signal, string operation);

    [LoggerMessage(20, LogLevel.Warning,
        "Rejected a control-channel connection from pid {ProcessId}: {Reason}.",

        EventName = "ControlConnectionRejected")]
    public static partial void ControlConnectionRejected(ILogger logger, int processId, string reason);

    [LoggerMessage(36, LogLevel.Error,
        "Supervising worker {WorkerId} (slot {Slot}) failed; the slot is supervised again.",

        EventName = "SupervisionFaulted")]
    public static partial void SupervisionFaulted(ILogger logger, int workerId, int slot, Exception exception);

    [LoggerMessage(37, LogLevel.Error, "Recycling worker {WorkerId} (slot {Slot}) failed; it keeps serving.", EventName = "RecycleFaulted")]
    public static partial void RecycleFaulted(ILogger logger, int workerId, int slot, Exception exception);

    [LoggerMessage(39, LogLevel.Error, "The heartbeat monitor failed; it starts again.", EventName = "MonitorFaulted")]
    public static partial void MonitorFaulted(ILogger logger, Exception exception);

    [LoggerMessage(40, LogLevel.Information,
        "Primary pid {ProcessId}. Signals: kill -HUP {ProcessId} restarts the workers one by one; -TTIN / -TTOU adds / " +
            "removes a worker; -USR2 upgrades the primary itself; -TERM (or Ctrl+C) stops gracefully.",
        EventName = "PrimarySignals")]
    public static partial void PrimarySignals(ILogger logger, int processId);

    [LoggerMessage(51, LogLevel.Information,
        "Removed what primaries no longer running (killed, or their container ended) left in {TempPath}: {Count} runtime directories.",
        EventName = "StaleRuntimeDirectoriesRemoved")]
    public static partial void StaleRuntimeDirectoriesRemoved(ILogger logger, int count, string tempPath);

    [LoggerMessage(44, LogLevel.Information,
        "Started by {Launcher} (pid {ProcessId}): the cluster stops when it exits, so no primary is left serving unseen.",
        EventName = "FollowingLauncher")]
    public static partial void FollowingLauncher(ILogger logger, string launcher, int processId);

    [LoggerMessage(45, LogLevel.Warning, "{Launcher} (pid {ProcessId}) exited; stopping the cluster.", EventName = "LauncherGone")]
    public static partial void LauncherGone(ILogger logger, string launcher, int processId);

    [LoggerMessage(52, LogLevel.Information,
        "Connections are waiting and no worker is ready: worker(s) {WorkerIds} end their warm-up now and serve.",
        EventName = "WarmUpsEnded")]
    public static partial void WarmUpsEnded(ILogger logger, string workerIds);

    [LoggerMessage(48, LogLevel.Warning,
        "This app is hosted by {Host} (WebApplicationFactory?): workers run the app's own Main with its configuration (appsettings, " +
        "environment, command line). What the host added to this primary only — ConfigureWebHost's ConfigureServices and " +
        "ConfigureTestServices, UseSetting, in-memory configuration, ConfigureLogging — does not reach the workers. Derive the factory " +
        "from ClusterWebApplicationFactory<TEntryPoint> (package KestrelCluster.Testing) and every worker runs its ConfigureWebHost too.",
        EventName = "HostCustomisationsStayInPrimary")]
    public static partial void HostCustomisationsStayInPrimary(ILogger logger, string host);

    [LoggerMessage(49, LogLevel.Information, "Each worker runs {Factory}.ConfigureWebHost, as this primary did.",
        EventName = "WorkersRunTestFactory")]
    public static partial void WorkersRunTestFactory(ILogger logger, string factory);

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
