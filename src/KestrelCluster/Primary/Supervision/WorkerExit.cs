// Why a worker left, and how: what the status endpoint, the admin tool and the restarts metric report.
namespace KestrelCluster.Primary.Supervision;

/// <summary>Why a worker process ended.</summary>
internal enum WorkerExitReason
{
    /// <summary>It died on its own (an exception, a signal from outside, the OOM killer).</summary>
    Crash,

    /// <summary>Killed by the primary: no heartbeat within WorkerTimeout.</summary>
    Hung,

    /// <summary>Killed by the primary: not ready within WorkerStartTimeout.</summary>
    StartTimeout,

    /// <summary>Recycled: it passed MaxWorkerMemory.</summary>
    Memory,

    /// <summary>Recycled: it passed MaxRequestsPerWorker.</summary>
    Requests,

    /// <summary>Replaced by a rolling restart.</summary>
    Rolling,

    /// <summary>Its slot was removed (scale down).</summary>
    Scale,

    /// <summary>The cluster stopped.</summary>
    Shutdown,
}

/// <summary>The last exit of a slot's worker.</summary>
internal sealed record WorkerExit(int WorkerId, int ProcessId, int ExitCode, WorkerExitReason Reason, DateTimeOffset At)
{
    /// <summary>The signal that ended it (the runtime reports death by signal N as exit code 128 + N), or null.</summary>
    public int? Signal => ExitCode is > 128 and < 160 ? ExitCode - 128 : null;

    public static string Describe(WorkerExitReason reason) => reason switch
    {
        WorkerExitReason.Crash => "crash",
        WorkerExitReason.Hung => "hung",
        WorkerExitReason.StartTimeout => "start-timeout",
        WorkerExitReason.Memory => "memory",
        WorkerExitReason.Requests => "requests",
        WorkerExitReason.Rolling => "rolling",
        WorkerExitReason.Scale => "scale",
        _ => "shutdown",
    };

    /// <summary>SIGKILL, SIGTERM…: the names operators know (Linux numbering).</summary>
    public static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => $"signal {signal}",
    };
}
