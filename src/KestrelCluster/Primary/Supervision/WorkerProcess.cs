// The primary's handle on one worker process: identity, secret, OS process, control channel, and what its
// heartbeats last said.
using System.Diagnostics;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Supervision;

internal sealed class WorkerProcess
{
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exitLogged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastHeartbeatTicks;
    private long _readyAtTicks;
    private WorkerHeartbeat _heartbeat;
    private (WorkerHeartbeat Beat, long At) _previous, _latest; // the last two beats, for rates (under _laggedLock)
    private int _exitReason = -1;
    private readonly Lock _laggedLock = new();
    private WorkerHeartbeat _mostLagged;
    private volatile bool _retiring;
    private int _recycleRequested;

    public WorkerProcess(int id, int slot, int generation, int restarts, byte[] secret, long recycleAfterRequests)
    {
        Id = id;
        Slot = slot;
        Generation = generation;
        Restarts = restarts;
        Secret = secret;
        RecycleAfterRequests = recycleAfterRequests;
    }

    public int Id { get; }

    public int Slot { get; }

    public int Generation { get; }

    public int Restarts { get; }

    /// <summary>The one-time secret the worker must present on the control channel.</summary>
    public byte[] Secret { get; }

    /// <summary>Requests after which this worker is recycled (its own jittered limit); 0: never.</summary>
    public long RecycleAfterRequests { get; }

    public Process? Process { get; private set; }

    public int ProcessId { get; private set; }

    public DateTimeOffset StartedAt { get; private set; }

    /// <summary>The control channel, once the worker has connected and proved who it is.</summary>
    public WorkerChannel? Channel { get; set; }

    /// <summary>Completes with the exit code when the process has exited.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>
    /// Completes once the primary has recorded the exit and logged it, after the last lines the worker wrote: what waits
    /// for it may log what follows from the exit and keep the console in order.
    /// </summary>
    public Task ExitLogged => _exitLogged.Task;

    public void MarkExitLogged() => _exitLogged.TrySetResult();

    /// <summary>Completes when the worker reports that its app has started and its endpoints are registered.</summary>
    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompleted;

    /// <summary>Being replaced or removed on purpose: its exit is expected and starts no replacement.</summary>
    public bool IsRetiring => _retiring;

    public WorkerState State => _retiring ? WorkerState.Draining : IsReady ? WorkerState.Ready : WorkerState.Starting;

    /// <summary>Connections this worker has taken from the primary.</summary>
    public long Handoffs => Channel?.HandedOff ?? 0;

    public WorkerHeartbeat LastHeartbeat => _heartbeat;

    /// <summary>Time since the last heartbeat (or since it became ready, before the first one).</summary>
    public TimeSpan SilentFor => Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastHeartbeatTicks));

    public void MarkReady()
    {
        var now = Stopwatch.GetTimestamp();
        Interlocked.Exchange(ref _lastHeartbeatTicks, now);
        Interlocked.CompareExchange(ref _readyAtTicks, now, 0);
        _ready.TrySetResult();
    }

    /// <summary>
    /// Whether this worker has shown that it runs: it became ready and then either served (took a connection, or
    /// reported a request) or stayed up for <paramref name="minUptime"/>. Its death is then not a crash loop.
    /// </summary>
    public bool HasProvenItself(TimeSpan minUptime) =>
        IsReady && (Handoffs > 0 || _heartbeat.Requests > 0 || Stopwatch.GetElapsedTime(Interlocked.Read(ref _readyAtTicks)) >= minUptime);

    /// <summary>The process could not be launched at all: it counts as exited.</summary>
    public void MarkFailedToStart() => _exited.TrySetResult(-1);

    /// <summary>True the first time only: a worker is recycled once.</summary>
    public bool TryRequestRecycle() => Interlocked.Exchange(ref _recycleRequested, 1) == 0;

    /// <summary>Whether a thread-pool starvation warning is out for this worker (logged once per episode).</summary>
    public bool StarvationReported { get; set; }

    /// <summary>Whether an overdue-heartbeat warning is out for this worker (logged once per silence).</summary>
    public bool SilenceReported { get; set; }

    public void OnHeartbeat(WorkerHeartbeat heartbeat)
    {
        _heartbeat = heartbeat;
        lock (_laggedLock)
        {
            _previous = _latest;
            _latest = (heartbeat, Stopwatch.GetTimestamp());
            if (heartbeat.ThreadPoolLagMilliseconds >= _mostLagged.ThreadPoolLagMilliseconds)
            {
                _mostLagged = heartbeat;
            }
        }

        Interlocked.Exchange(ref _lastHeartbeatTicks, Stopwatch.GetTimestamp());
    }

    /// <summary>
    /// The latest of the most lagged heartbeats since the previous call (the monitor's): a late beat is seen even when
    /// a punctual one arrived right after it.
    /// </summary>
    public WorkerHeartbeat TakeMostLaggedHeartbeat()
    {
        lock (_laggedLock)
        {
            var heartbeat = _mostLagged;
            _mostLagged = default;
            return heartbeat;
        }
    }

    /// <summary>Requests per second and CPU use (percent of one core) between the last two heartbeats; 0 before two.</summary>
    public (double RequestsPerSecond, double CpuPercent) Rates
    {
        get
        {
            lock (_laggedLock)
            {
                if (_previous.At == 0)
                {
                    return (0, 0);
                }

                var seconds = Stopwatch.GetElapsedTime(_previous.At, _latest.At).TotalSeconds;
                return seconds <= 0 ? (0, 0) : (
                    (_latest.Beat.Requests - _previous.Beat.Requests) / seconds,
                    (_latest.Beat.CpuTime - _previous.Beat.CpuTime).TotalSeconds / seconds * 100);
            }
        }
    }

    /// <summary>Why it ends, once known (the first reason given wins); a worker that ends with none crashed.</summary>
    public WorkerExitReason ExitReason => _exitReason < 0 ? WorkerExitReason.Crash : (WorkerExitReason)_exitReason;

    /// <summary>Records why the worker is about to end; the first reason given wins.</summary>
    public void SetExitReason(WorkerExitReason reason) => Interlocked.CompareExchange(ref _exitReason, (int)reason, -1);

    /// <summary>Marks the worker as leaving on purpose, for <paramref name="reason"/>; returns false if it already was.</summary>
    public bool BeginRetiring(WorkerExitReason reason)
    {
        SetExitReason(reason);
        if (_retiring)
        {
            return false;
        }

        _retiring = true;
        return true;
    }

    /// <summary>Completes when the worker's stdout and stderr are closed and everything it wrote is on the console.</summary>
    public Task OutputClosed { get; private set; } = Task.CompletedTask;

    public void Start(ProcessStartInfo startInfo, WorkerSpawner spawner, ConsoleFormat format)
    {
        var process = spawner.Start(startInfo);
        if (startInfo.RedirectStandardInput)
        {
            process.StandardInput.Close(); // end of input at once
        }

        if (startInfo.RedirectStandardOutput)
        {
            OutputClosed = Task.WhenAll(
                WorkerOutput.PumpAsync(process.StandardOutput.BaseStream, Console.Out, format, Id, Slot, isError: false),
                WorkerOutput.PumpAsync(process.StandardError.BaseStream, Console.Error, format, Id, Slot, isError: true));
        }

        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => _exited.TrySetResult(SafeExitCode(process));
        Process = process;
        ProcessId = process.Id;
        StartedAt = DateTimeOffset.UtcNow;
        Interlocked.Exchange(ref _lastHeartbeatTicks, Stopwatch.GetTimestamp());
        if (process.HasExited)
        {
            _exited.TrySetResult(SafeExitCode(process));
        }
    }

    /// <summary>Kills the process (SIGKILL) if it is still running.</summary>
    public void Kill()
    {
        try
        {
            if (Process is { HasExited: false } process)
            {
                process.Kill();
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public WorkerInfo ToInfo() => new()
    {
        Id = Id,
        SlotIndex = Slot,
        ProcessId = ProcessId,
        State = State,
        Generation = Generation,
        Restarts = Restarts,
        StartedAt = StartedAt,
        ConnectionsHandedOff = Handoffs,
        Requests = _heartbeat.Requests,
        MemoryBytes = _heartbeat.WorkingSetBytes,
    };

    private static int SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            return -1;
        }
    }

    public override string ToString() => $"worker {Id} (slot {Slot}, pid {ProcessId})";
}
