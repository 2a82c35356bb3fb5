// The workers and their slots: which worker processes exist, starting one in a slot, and stopping them all.
// Deciding when to start one belongs to SlotSupervisor (a worker died) and WorkerRotation (restart, scale,
// recycle); this class only keeps the books and guarantees that nothing starts once the primary stops.
//
// Lock order: _spawnLock, then _lock. Neither is held while calling into a channel or the dispatcher.
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary;

internal sealed partial class WorkerPool : IDisposable
{
    private readonly ClusterOptions _options;
    private readonly WorkerLauncher _launcher;
    private readonly WorkerSpawner _spawner = new();
    private readonly ILogger _logger;
    private readonly ILogger _controlLogger;
    private readonly Func<WorkerProcess, System.Net.Sockets.Socket, WorkerChannel> _createChannel;
    private readonly Lock _lock = new(); // _slots, _workers
    private readonly Lock _spawnLock = new(); // a spawn and the start of a stop exclude each other
    private readonly List<WorkerSlot> _slots = [];
    private readonly Dictionary<int, WorkerProcess> _workers = [];
    private readonly CancellationTokenSource _stopping = new();
    private volatile bool _stopRequested;
    private ControlServer? _control;
    private string? _urls;
    private bool _preferUrls;
    private int _nextWorkerId;
    private int _generation;
    private volatile bool _anyWorkerReady;

    private readonly ConsoleFormat _consoleFormat;
    private readonly string? _consoleFormatter;

    public WorkerPool(ClusterOptions options, WorkerLauncher launcher, Func<WorkerProcess, System.Net.Sockets.Socket,
        WorkerChannel> createChannel,
        ILoggerFactory loggerFactory, string? consoleFormatter = null)
    {
        _consoleFormatter = consoleFormatter;
        _consoleFormat = WorkerOutputFormat.FromFormatterName(consoleFormatter);
        _options = options;
        _launcher = launcher;
        _createChannel = createChannel;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Primary");
        _controlLogger = loggerFactory.CreateLogger("KestrelCluster.Primary.ControlServer");
    }

    public string? ControlSocketPath => _control?.SocketPath;

    /// <summary>The primary's private runtime directory, once open.</summary>
    public string? RuntimeDirectory => _control?.RuntimeDirectory;

    /// <summary>Cancelled as soon as the primary begins to stop (a signal, or the host stopping): no more workers start.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public bool IsStopping => _stopRequested;

    /// <summary>Whether some worker has ever become ready (an app that never starts is stopped, not retried forever).</summary>
    public bool AnyWorkerReady => _anyWorkerReady;

    /// <summary>The rolling-restart generation that workers started now belong to.</summary>
    public int Generation => Volatile.Read(ref _generation);

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

    /// <summary>Opens the control socket workers connect to. Workers can be spawned from then on.</summary>
    public void Open(string? urls, bool preferUrls)
    {
        _urls = urls;
        _preferUrls = preferUrls;
        _control = new ControlServer(FindWorker, OnAuthenticated, _controlLogger);
        var (fileName, arguments) = _launcher.Command;
        PrimaryLog.StartingWorkers(_logger, _options.Workers, fileName, string.Join(' ', arguments));
        if (_launcher.TestFactory is { } factory)
        {
            PrimaryLog.WorkersRunTestFactory(_logger, factory.TypeName);
        }
        else if (_launcher.HostedByAnotherProgram)
        {
            PrimaryLog.HostCustomisationsStayInPrimary(_logger, Path.GetFileName(Environment.GetCommandLineArgs()[0]));
        }
    }

    public int NextGeneration() => Interlocked.Increment(ref _generation);

    /// <summary>The id of the last worker started (0 before the first).</summary>
    public int LastWorkerId => Volatile.Read(ref _nextWorkerId);

    /// <summary>Numbers the workers on from <paramref name="lastWorkerId"/>: a primary taking over from one that used those.</summary>
    public void ContinueWorkerIdsAfter(int lastWorkerId) => Volatile.Write(ref _nextWorkerId, lastWorkerId);

    /// <summary>
    /// Marks the pool as stopping: from now on no worker starts, and a worker that exits is expected. Called as soon
    /// as a stop signal arrives, before the host begins to stop: a signal to the whole process group (Ctrl+C) reaches
    /// the workers too, and their exits must not be taken for crashes.
    /// </summary>
    public void BeginStopping()
    {
        lock (_spawnLock)
        {
            if (_stopRequested)
            {
                return;
            }

            _stopRequested = true;
        }

        _stopping.Cancel();
    }

    /// <summary>
    /// Starts a worker in <paramref name="slot"/>; null once the pool is stopping. Throws <see cref="WorkerStartException"/>
    /// when the process could not be started (logged by the caller, which decides whether to try again).
    /// </summary>
    public WorkerProcess? Spawn(WorkerSlot slot)
    {
        lock (_spawnLock)
        {
            if (_stopRequested)
            {
                return null;
            }

            var id = Interlocked.Increment(ref _nextWorkerId);
            var secret = new byte[ControlFrames.SecretLength];
            Libc.FillRandom(secret);
            var recycleAfter = _options.MaxRequestsPerWorker <= 0 ? 0
                : _options.MaxRequestsPerWorker + (_options.MaxRequestsJitter > 0
                    ? Random.Shared.NextInt64(_options.MaxRequestsJitter + 1) : 0);
            var worker = new WorkerProcess(id, slot.Index, Generation, slot.StartCount++, secret, recycleAfter);
            var identity = new WorkerIdentity(id, slot.Index, SlotCount, _control!.SocketPath, secret, _urls, _preferUrls,
                Environment.ProcessId, _consoleFormatter, _launcher.TestFactory?.Replay);
            lock (_lock)
            {
                _workers[id] = worker;
            }

            try
            {
                worker.Start(_launcher.CreateStartInfo(identity), _spawner, _consoleFormat);
                PrimaryLog.WorkerStarted(_logger, id, slot.Index, worker.ProcessId);
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                worker.MarkFailedToStart();
                lock (_lock)
                {
                    _workers.Remove(id);
                }

                // No process ever had this id (and no other start ran since: _spawnLock): the next attempt takes it again.
                Interlocked.CompareExchange(ref _nextWorkerId, id - 1, id);
                slot.StartCount--;

                throw new WorkerStartException($"Worker {id} (slot {slot.Index}) could not be started.", e) { WorkerId = id };
            }

            return worker;
        }
    }

    /// <summary>Forgets a worker that has exited.</summary>
    public void Remove(WorkerProcess worker)
    {
        lock (_lock)
        {
            _workers.Remove(worker.Id);
        }
    }

    public WorkerSlot? SlotOf(WorkerProcess worker)
    {
        lock (_lock)
        {
            return worker.Slot < _slots.Count ? _slots[worker.Slot] : null;
        }
    }

    /// <summary>The lowest removed slot back in service, or a new one: live slots stay 0 … N-1.</summary>
    public WorkerSlot AddSlot()
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

    public List<WorkerSlot> LiveSlots()
    {
        lock (_lock)
        {
            return [.. _slots.Where(s => !s.Removed)];
        }
    }

    /// <summary>How many live slots have a worker that is ready and serving.</summary>
    public int ReadySlotCount() => LiveSlots().Count(s => s.HasServingWorker);

    /// <summary>Kills a worker that stopped answering; it is replaced like any worker that dies.</summary>
    public void KillHung(WorkerProcess worker)
    {
        PrimaryLog.WorkerHung(_logger, worker.Id, worker.ProcessId, worker.SilentFor, _options.WorkerTimeout);
        worker.SetExitReason(WorkerExitReason.Hung);
        worker.Kill();
    }

    /// <summary>Stops every worker gracefully; kills the ones still running when <paramref name="cancellationToken"/> fires.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        BeginStopping();
        var workers = Workers; // complete: no worker is added once stopping
        PrimaryLog.StoppingWorkers(_logger, workers.Count);
        foreach (var worker in workers)
        {
            worker.BeginRetiring(WorkerExitReason.Shutdown);
            if (worker.Channel is null)
            {
                worker.Kill(); // never connected: it serves nothing yet
            }
            else
            {
                worker.Channel.StopRouting();
            }
        }

        try
        {
            // The connections handed over in the last moment get their first request in before the drain begins;
            // then every worker is told to drain (a closed channel: the worker is on its way out, it got the signal too).
            var connected = workers.Where(w => w.Channel is not null).ToList();
            await Task.WhenAll(connected.Select(w => w.Channel!.WaitForLastHandoffAsync(WorkerChannel.FirstRequestGrace)))
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var worker in connected)
            {
                worker.Channel!.TrySendControl(ControlFrames.Stop());
            }

            // Each exit logged (after the worker's last lines) before the line that says they all stopped.
            await Task.WhenAll(workers.Select(w => w.ExitLogged)).WaitAsync(cancellationToken).ConfigureAwait(false);
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

        // Every channel closed: what a worker held and never acknowledged has been routed on (to a primary that took over)
        // or counted as closed, before this primary goes.
        var closing = Task.WhenAll(workers.Where(w => w.Channel is not null).Select(w => w.Channel!.Closed));
        await Task.WhenAny(closing, Task.Delay(s_channelCloseGrace, CancellationToken.None)).ConfigureAwait(false);
    }

    /// <summary>How long the stop waits for the channels of exited (or killed) workers to close.</summary>
    private static readonly TimeSpan s_channelCloseGrace = TimeSpan.FromSeconds(5);

    public void Dispose()
    {
        BeginStopping();
        foreach (var worker in Workers)
        {
            worker.Kill();
        }

        _control?.Dispose();
        _spawner.Dispose();
    }
}
