// The workers and their slots: which worker processes exist, starting one in a slot, and stopping them all.
// Deciding when to start one belongs to SlotSupervisor (a worker died) and WorkerRotation (restart, scale,
// recycle); this class only keeps the books and guarantees that nothing starts once the primary stops (stopping them
// all: WorkerPool.Stopping.cs; their control channels: WorkerPool.ControlChannels.cs).
//
// Lock order: _spawnLock, then _lock. Neither is held while calling into a channel or the dispatcher.
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

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
        SupervisionLog.StartingWorkers(_logger, _options.Workers, fileName, string.Join(' ', arguments));
        if (_launcher.TestFactory is { } factory)
        {
            SupervisionLog.WorkersRunTestFactory(_logger, factory.TypeName);
        }
        else if (_launcher.HostedByAnotherProgram)
        {
            SupervisionLog.HostCustomisationsStayInPrimary(_logger, Path.GetFileName(Environment.GetCommandLineArgs()[0]));
        }
    }

    public int NextGeneration() => Interlocked.Increment(ref _generation);

    /// <summary>The id of the last worker started (0 before the first).</summary>
    public int LastWorkerId => Volatile.Read(ref _nextWorkerId);

    /// <summary>Numbers the workers on from <paramref name="lastWorkerId"/>: a primary taking over from one that used those.</summary>
    public void ContinueWorkerIdsAfter(int lastWorkerId) => Volatile.Write(ref _nextWorkerId, lastWorkerId);

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
                SupervisionLog.WorkerStarted(_logger, id, slot.Index, worker.ProcessId);
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
        SupervisionLog.WorkerHung(_logger, worker.Id, worker.ProcessId, worker.SilentFor, _options.WorkerTimeout);
        worker.SetExitReason(WorkerExitReason.Hung);
        worker.Kill();
    }

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
