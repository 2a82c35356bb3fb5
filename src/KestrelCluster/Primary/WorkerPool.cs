// The workers, slot by slot: starting them, replacing the ones that die (with backoff and a crash-loop
// breaker), replacing live ones without downtime (rolling restart, recycle), scaling, and stopping them all.
// Operations that retire workers on purpose run one at a time.
using KestrelCluster.Hosting;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed partial class WorkerPool : IDisposable
{
    /// <summary>Failed starts in a row, with no worker ever ready, after which the primary gives up.</summary>
    private const int FirstStartAttempts = 3;

    /// <summary>
    /// How long a retired worker keeps running, after its last new connection, before it is told to stop: time for that
    /// connection's first request to arrive, which Kestrel's graceful stop would otherwise not wait for.
    /// </summary>
    internal static readonly TimeSpan FirstRequestGrace = TimeSpan.FromSeconds(1);

    private readonly ClusterOptions _options;
    private readonly ClusterContext _context;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly WorkerLauncher _launcher;
    private readonly WorkerSpawner _spawner = new();
    private readonly ILogger _logger;
    private readonly ILogger _controlLogger;
    private readonly Func<WorkerProcess, System.Net.Sockets.Socket, WorkerChannel> _createChannel;
    private readonly Lock _lock = new();
    private readonly List<WorkerSlot> _slots = [];
    private readonly Dictionary<int, WorkerProcess> _workers = [];
    private readonly SemaphoreSlim _operations = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private ControlServer? _control;
    private string? _urls;
    private bool _preferUrls;
    private int _nextWorkerId;
    private int _generation;
    private volatile bool _anyWorkerReady;

    public WorkerPool(ClusterOptions options, ClusterContext context, IHostApplicationLifetime lifetime, WorkerLauncher launcher,
        Func<WorkerProcess, System.Net.Sockets.Socket, WorkerChannel> createChannel, ILoggerFactory loggerFactory)
    {
        _options = options;
        _context = context;
        _lifetime = lifetime;
        _launcher = launcher;
        _createChannel = createChannel;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Primary");
        _controlLogger = loggerFactory.CreateLogger("KestrelCluster.Primary.ControlServer");
    }

    public string? ControlSocketPath => _control?.SocketPath;

    /// <summary>Every live worker process, by slot (a slot has two while one replaces the other).</summary>
    public IReadOnlyList<WorkerProcess> Workers
    {
        get
        {
            lock (_lock)
            {
                return [.. _workers.Values.Where(w => !w.HasExited).OrderBy(w => w.Slot).ThenBy(w => w.Id)];
            }
        }
    }

    public int SlotCount
    {
        get
        {
            lock (_lock)
            {
                return _slots.Count(s => !s.Removed);
            }
        }
    }

    /// <summary>Opens the control socket and starts one worker per slot.</summary>
    public void Start(int workers, string? urls, bool preferUrls)
    {
        _urls = urls;
        _preferUrls = preferUrls;
        _control = new ControlServer(FindWorker, OnAuthenticated, _controlLogger);
        var (fileName, arguments) = _launcher.Command;
        PrimaryLog.StartingWorkers(_logger, workers, fileName, string.Join(' ', arguments));
        for (var i = 0; i < workers; i++)
        {
            var slot = AddSlot();
            slot.Current = Spawn(slot);
        }
    }

    /// <summary>Rolling restart: slot by slot, a ready replacement first, then the old worker drains.</summary>
    public async Task RestartAllAsync(CancellationToken cancellationToken)
    {
        await _operations.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var generation = Interlocked.Increment(ref _generation);
            PrimaryLog.RollingRestartStarting(_logger, generation);
            foreach (var slot in LiveSlots())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (slot.Current is { HasExited: false } current)
                {
                    if (!await ReplaceAsync(slot, current, "rolling restart").ConfigureAwait(false))
                    {
                        throw new InvalidOperationException($"Rolling restart stopped: the replacement for worker {current.Id} (slot {slot.Index}) did not become ready; worker {current.Id} keeps serving.");
                    }
                }
                else
                {
                    // An empty slot (crash loop, or between respawns): a restart gives it a fresh start.
                    slot.ResetFailures();
                    var fresh = Spawn(slot);
                    slot.Current = fresh;
                    await Task.WhenAny(fresh.Ready, fresh.Exited).WaitAsync(_stopping.Token).ConfigureAwait(false);
                }
            }

            PrimaryLog.RollingRestartDone(_logger, generation);
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>Sets the number of slots: new slots start now; removed ones (the highest) drain and exit.</summary>
    public async Task ScaleAsync(int workers, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        await _operations.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var live = LiveSlots();
            PrimaryLog.Scaling(_logger, live.Count, workers);
            var waits = new List<Task>();
            for (var i = live.Count; i < workers; i++)
            {
                var slot = AddSlot();
                slot.ResetFailures();
                slot.Current = Spawn(slot);
                waits.Add(Task.WhenAny(slot.Current.Ready, slot.Current.Exited));
            }

            foreach (var slot in live.Skip(workers))
            {
                slot.Removed = true;
                if (slot.Current is { } current)
                {
                    waits.Add(RetireAsync(current, "scale down"));
                }
            }

            _context.WorkerCount = workers;
            await Task.WhenAll(waits).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _operations.Release();
        }
    }

    /// <summary>Replaces a worker through the rolling path (replacement ready first), in the background.</summary>
    public void Recycle(WorkerProcess worker, string reason)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                await _operations.WaitAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                WorkerSlot? slot;
                lock (_lock)
                {
                    slot = worker.Slot < _slots.Count ? _slots[worker.Slot] : null;
                }

                if (slot is { Removed: false } && slot.Current == worker && !worker.HasExited)
                {
                    PrimaryLog.Recycling(_logger, worker.Id, worker.ProcessId, reason);
                    await ReplaceAsync(slot, worker, reason).ConfigureAwait(false);
                }
            }
            finally
            {
                _operations.Release();
            }
        });
    }

    /// <summary>Kills a worker that stopped answering; it is replaced like any worker that dies.</summary>
    public void KillHung(WorkerProcess worker)
    {
        PrimaryLog.WorkerHung(_logger, worker.Id, worker.ProcessId, worker.SilentFor, _options.WorkerTimeout);
        worker.Kill();
    }

    /// <summary>Stops every worker gracefully; kills the ones still running when <paramref name="cancellationToken"/> fires.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        var workers = Workers;
        PrimaryLog.StoppingWorkers(_logger, workers.Count);
        foreach (var worker in workers)
        {
            worker.BeginRetiring();
            if (worker.Channel is null)
            {
                worker.Kill(); // never connected: it serves nothing yet
            }
            else
            {
                // A closed channel means the worker is already on its way out (it got the signal too).
                worker.Channel.StopRouting();
                worker.Channel.TrySendControl(ControlFrames.Stop());
            }
        }

        try
        {
            await Task.WhenAll(workers.Select(w => w.Exited)).WaitAsync(cancellationToken).ConfigureAwait(false);
            PrimaryLog.WorkersStopped(_logger, workers.Count);
        }
        catch (OperationCanceledException)
        {
            foreach (var worker in workers.Where(w => !w.HasExited))
            {
                PrimaryLog.KillingStraggler(_logger, worker.Id, worker.ProcessId);
                worker.Kill();
            }
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        foreach (var worker in Workers)
        {
            worker.Kill();
        }

        _control?.Dispose();
        _spawner.Dispose();
    }

    private async Task<bool> ReplaceAsync(WorkerSlot slot, WorkerProcess old, string reason)
    {
        var fresh = Spawn(slot);
        await Task.WhenAny(fresh.Ready, fresh.Exited).ConfigureAwait(false);
        if (!fresh.IsReady)
        {
            PrimaryLog.ReplacementFailed(_logger, old.Id, slot.Index, reason);
            return false;
        }

        slot.Current = fresh;
        await RetireAsync(old, reason).ConfigureAwait(false);
        return true;
    }

    /// <summary>Stops routing to a worker, tells it to drain, and kills it if it has not exited in time.</summary>
    private async Task RetireAsync(WorkerProcess worker, string reason)
    {
        if (worker.BeginRetiring())
        {
            PrimaryLog.Retiring(_logger, worker.Id, worker.ProcessId, reason);
            if (worker.Channel is { } channel)
            {
                channel.StopRouting();
                await channel.WaitForLastHandoffAsync(FirstRequestGrace).ConfigureAwait(false);
            }

            // If the whole cluster began stopping meanwhile, StopAllAsync has already told every worker to drain.
            if (!_stopping.IsCancellationRequested && (worker.Channel is null || !worker.Channel.TrySendControl(ControlFrames.Stop())))
            {
                worker.Kill();
            }
        }

        try
        {
            await worker.Exited.WaitAsync(_options.WorkerStopTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            PrimaryLog.KillingStraggler(_logger, worker.Id, worker.ProcessId);
            worker.Kill();
            await worker.Exited.ConfigureAwait(false);
        }
    }

    private WorkerProcess Spawn(WorkerSlot slot)
    {
        var id = Interlocked.Increment(ref _nextWorkerId);
        var secret = new byte[ControlFrames.SecretLength];
        Libc.FillRandom(secret);
        var recycleAfter = _options.MaxRequestsPerWorker <= 0 ? 0
            : _options.MaxRequestsPerWorker + (_options.MaxRequestsJitter > 0 ? Random.Shared.NextInt64(_options.MaxRequestsJitter + 1) : 0);
        var worker = new WorkerProcess(id, slot.Index, Volatile.Read(ref _generation), slot.StartCount++, secret, recycleAfter);
        var identity = new WorkerIdentity(id, slot.Index, SlotCount, _control!.SocketPath, secret, _urls, _preferUrls, Environment.ProcessId);
        lock (_lock)
        {
            _workers[id] = worker;
        }

        try
        {
            worker.Start(_launcher.CreateStartInfo(identity), _spawner);
            PrimaryLog.WorkerStarted(_logger, id, slot.Index, worker.ProcessId);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            PrimaryLog.SpawnFailed(_logger, id, slot.Index, e);
            worker.MarkFailedToStart();
        }

        _ = WatchAsync(slot, worker);
        return worker;
    }

    private async Task WatchAsync(WorkerSlot slot, WorkerProcess worker)
    {
        await Task.WhenAny(worker.Ready, worker.Exited, Task.Delay(_options.WorkerStartTimeout, _stopping.Token)).ConfigureAwait(false);
        if (!worker.IsReady && !worker.HasExited && !_stopping.IsCancellationRequested)
        {
            PrimaryLog.WorkerStartTimedOut(_logger, worker.Id, worker.ProcessId, _options.WorkerStartTimeout);
            worker.Kill();
        }

        var exitCode = await worker.Exited.ConfigureAwait(false);
        lock (_lock)
        {
            _workers.Remove(worker.Id);
        }

        worker.Channel?.Close("the worker process exited");
        if (_stopping.IsCancellationRequested || worker.IsRetiring || slot.Removed || slot.Current != worker)
        {
            // Expected: shutdown, a retired worker, or a replacement that failed to start (its restarter reports it).
            PrimaryLog.WorkerExited(_logger, worker.Id, worker.ProcessId, exitCode);
            return;
        }

        await RespawnAsync(slot, worker, WorkerSlot.DescribeExit(exitCode)).ConfigureAwait(false);
    }

    private async Task RespawnAsync(WorkerSlot slot, WorkerProcess worker, string exitStatus)
    {
        var ranStably = worker.IsReady && DateTimeOffset.UtcNow - worker.StartedAt >= WorkerSlot.StableAfter;
        var failures = slot.RecordFailure(ranStably, _options.CrashLoopWindow);
        slot.Current = null;

        if (!_anyWorkerReady && !worker.IsReady && failures.Consecutive >= FirstStartAttempts)
        {
            // The app cannot start at all (it throws at startup): looping would hide that. Stop with the error.
            PrimaryLog.NoWorkerEverStarted(_logger, slot.Index, failures.Consecutive, exitStatus);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return;
        }

        if (failures.InWindow >= _options.CrashLoopRestarts)
        {
            PrimaryLog.CrashLoop(_logger, slot.Index, failures.InWindow, _options.CrashLoopWindow, worker.Id, exitStatus);
            return;
        }

        var delay = WorkerSlot.Backoff(failures.Consecutive);
        PrimaryLog.ReplacingWorker(_logger, worker.Id, slot.Index, worker.ProcessId, exitStatus, (long)delay.TotalMilliseconds);
        try
        {
            await Task.Delay(delay, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (!slot.Removed && slot.Current is null)
        {
            slot.Current = Spawn(slot);
        }
    }

    /// <summary>The lowest removed slot back in service, or a new one: live slots stay 0 … N-1.</summary>
    private WorkerSlot AddSlot()
    {
        lock (_lock)
        {
            var slot = _slots.FirstOrDefault(s => s.Removed);
            if (slot is null)
            {
                slot = new WorkerSlot(_slots.Count);
                _slots.Add(slot);
            }

            slot.Removed = false;
            return slot;
        }
    }

    private List<WorkerSlot> LiveSlots()
    {
        lock (_lock)
        {
            return [.. _slots.Where(s => !s.Removed)];
        }
    }
}
