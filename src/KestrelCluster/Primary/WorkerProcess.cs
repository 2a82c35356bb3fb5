// The primary's handle on one worker process: identity, secret, OS process and control channel.
using System.Diagnostics;

namespace KestrelCluster.Primary;

internal sealed class WorkerProcess
{
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _handoffs;

    public WorkerProcess(int id, int slot, byte[] secret)
    {
        Id = id;
        Slot = slot;
        Secret = secret;
    }

    public int Id { get; }

    public int Slot { get; }

    /// <summary>The one-time secret the worker must present on the control channel.</summary>
    public byte[] Secret { get; }

    public Process? Process { get; private set; }

    public int ProcessId { get; private set; }

    public DateTimeOffset StartedAt { get; private set; }

    /// <summary>The control channel, once the worker has connected and proved who it is.</summary>
    public WorkerChannel? Channel { get; set; }

    /// <summary>Completes with the exit code when the process has exited.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Completes when the worker reports that its app has started and its endpoints are registered.</summary>
    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompleted;

    public void MarkReady() => _ready.TrySetResult();

    public long Handoffs => Interlocked.Read(ref _handoffs);

    public void CountHandoff() => Interlocked.Increment(ref _handoffs);

    public void Start(ProcessStartInfo startInfo)
    {
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        process.Exited += (_, _) => _exited.TrySetResult(SafeExitCode(process));
        process.Start();
        Process = process;
        ProcessId = process.Id;
        StartedAt = DateTimeOffset.UtcNow;
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
