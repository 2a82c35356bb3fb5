// The supervisor: the primary's hosted service and its IClusterManager. It starts the workers once the
// server is bound, runs the heartbeat monitor, the admin socket and the operator signals (OperatorSignals: SIGHUP,
// SIGTTIN, SIGTTOU, SIGUSR2), hands over to a new primary on an upgrade (PrimaryUpgrade) or takes over from an old one
// (PrimaryTakeover), and stops every worker gracefully when the host stops. A stop signal
// marks the cluster as stopping the moment it arrives: Ctrl+C reaches every worker of the process group too, and
// a worker that exits then is not a crash to replace.
using System.Runtime.InteropServices;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Primary.Operations;
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Primary.Upgrade;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Primary;

internal sealed partial class ClusterSupervisor : IHostedService, IClusterManager, IDisposable
{
    private readonly ClusterOptions _options;
    private readonly ClusterContext _context;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly IServer _server;
    private readonly PrimaryListenerTable _listeners;
    private readonly HandoffDispatcher _dispatcher;
    private readonly WorkerPool _pool;
    private readonly SlotSupervisor _slots;
    private readonly WorkerRotation _rotation;
    private readonly ILogger _logger;
    private readonly List<PosixSignalRegistration> _signals = [];
    private AdminServer? _admin;
    private readonly OperatorSignals _operatorSignals;
    private readonly PrimaryUpgrade _upgrade;
    private readonly PrimaryTakeover? _takeover;
    private readonly ServiceManagerNotifier? _notifier = ServiceManagerNotifier.Create();
    private ServiceManagerReports? _reports;
    private readonly Lock _stopLock = new();
    private Task? _stop;
    private int _disposed;
    private readonly long? _kestrelMaxConnections;

    public ClusterSupervisor(IOptions<ClusterOptions> options, ClusterContext context, IHostApplicationLifetime lifetime, IServer server,
        PrimaryListenerTable listeners, HandoffDispatcher dispatcher, WorkerLauncher launcher, Messaging.ClusterMessenger messenger,
            IConnectionScheduler scheduler, System.Diagnostics.Metrics.IMeterFactory meterFactory,
            IOptions<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions> console, ILoggerFactory loggerFactory,
            PrimaryTakeover? takeover = null,
            IOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>? kestrel = null)
    {
        _kestrelMaxConnections = kestrel?.Value.Limits.MaxConcurrentConnections;
        _options = options.Value;
        _context = context;
        _lifetime = lifetime;
        _server = server;
        _listeners = listeners;
        _dispatcher = dispatcher;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Primary");
        var channelLogger = loggerFactory.CreateLogger("KestrelCluster.Primary.WorkerChannel");
        _pool = new WorkerPool(_options, launcher,
            (worker, socket) => new WorkerChannel(worker.Id, worker.Slot, socket, dispatcher, listeners, _options.MaxHandoffsInFlight,
                channelLogger, messenger, () => Status!.Write()), loggerFactory,
            console.Value.FormatterName);
        if (_options.WarmUpPath is not null)
        {
            dispatcher.NoWorkerReady = _pool.EndWarmUps;
        }
        var scheduling = scheduler.GetType().Assembly == typeof(ClusterOptions).Assembly
            ? _options.Scheduling.ToString()
            : scheduler.GetType().FullName ?? scheduler.GetType().Name;
        _upgrade = new PrimaryUpgrade(_pool, launcher, listeners, dispatcher, _options.PrimaryUpgradeTimeout, _logger);
        _takeover = takeover;
        Status = new ClusterStatusReport(_pool, dispatcher, context, scheduling, () =>
            [.. _server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []], () => _upgrade.SuccessorProcessId,
            takeover?.FromProcessId);
        _slots = new SlotSupervisor(_pool, _options, lifetime, _logger);
        if (context.Role == ClusterRole.Primary)
        {
            _slots.ExitRecorded += new PrimaryMetrics(meterFactory, _pool, dispatcher).OnExit;
        }

        _rotation = new WorkerRotation(_pool, _slots, _options, context, _logger);
        _operatorSignals = new OperatorSignals(_pool, _rotation, () => UpgradePrimaryAsync(), _logger);
        messenger.AttachPrimary(() => [.. _pool.Workers.Where(w => w.Channel is not null)
            .Select(w => new Messaging.MessageTarget(w.Id, w.Channel!, IsServing: !w.IsRetiring))]);
    }

    /// <summary>The cluster's status as JSON (MapClusterStatus, the admin socket).</summary>
    public ClusterStatusReport Status { get; }

    /// <summary>The control socket's path, once workers are being started (tests use it).</summary>
    internal string? ControlSocketPath => _pool.ControlSocketPath;

    /// <summary>Every live worker process (tests use it).</summary>
    internal IReadOnlyList<WorkerProcess> WorkerProcesses => _pool.Workers;

    /// <summary>The slots' supervision (tests inject faults into it).</summary>
    internal SlotSupervisor Slots => _slots;

    public IReadOnlyList<WorkerInfo> GetWorkers() => [.. _pool.Workers.Select(w => w.ToInfo())];

    public int WorkerCount => _context.WorkerCount;

    public Task RestartWorkersAsync(CancellationToken cancellationToken = default)
    {
        EnsureClustered();
        return _rotation.RestartAllAsync(cancellationToken);
    }

    public Task ScaleAsync(int workers, CancellationToken cancellationToken = default)
    {
        EnsureClustered();
        return _rotation.ScaleAsync(workers, cancellationToken);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_context.Role != ClusterRole.Primary)
        {
            if (_notifier is { } notifier)
            {
                // One process: what the app's UseSystemd() would have sent (its NOTIFY_SOCKET was taken for this class).
                _lifetime.ApplicationStarted.Register(() => notifier.Notify("READY=1"));
                _lifetime.ApplicationStopping.Register(() => notifier.Notify("STOPPING=1"));
            }

            if (_options.Workers > 0 && ClusterContext.HeldBackByDotnetWatch(_options))
            {
                PrimaryLog.StandaloneUnderWatch(_logger);
            }
            else if (_options.Workers > 0 && !ClusterContext.PlatformSupportsHandoff)
            {
                PrimaryLog.PlatformUnsupported(_logger, $"{RuntimeInformation.OSDescription}: " +
                    $"{Interop.Libc.AbiMismatch ?? "fd passing is off"}");
            }

            return Task.CompletedTask;
        }

        // From the first moment: a stop signal (or the host stopping for any reason) means no worker starts again,
        // and the exits that follow are expected. The host's own handlers still do the stopping.
        if (_notifier is not null)
        {
            _reports = new ServiceManagerReports(_notifier, _pool, _slots, _rotation, _context);
        }

        WireUpgrade();

        foreach (var signal in (ReadOnlySpan<PosixSignal>)[PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT])
        {
            _signals.Add(PosixSignalRegistration.Create(signal, _ => BeginStopping()));
        }

        _lifetime.ApplicationStopping.Register(BeginStopping);
        _ = LauncherWatch.RunAsync(_logger, _lifetime.StopApplication, _pool.Stopping);
        if (ClusterContext.UnderDotnetWatch)
        {
            HotReloadNotice.Applied += () => PrimaryLog.HotReloadNotInWorkers(_logger, Environment.ProcessId);
        }

        if (_options.Workers > 4 * Environment.ProcessorCount)
        {
            PrimaryLog.ManyWorkers(_logger, _options.Workers, Environment.ProcessorCount);
        }

        // Workers start once the server has bound every endpoint: a taken port fails the primary before any worker exists.
        _lifetime.ApplicationStarted.Register(StartWorkers);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (_context.Role != ClusterRole.Primary)
        {
            return Task.CompletedTask;
        }

        // Once, and every caller waits for that one stop: a host stopped twice at the same time (WebApplicationFactory's
        // dispose, and the app's own Run() seeing ApplicationStopping) must not see it done early, or it disposes the
        // supervisor, and the workers are killed in the middle of their drain.
        lock (_stopLock)
        {
            return _stop ??= StopWorkersAsync(cancellationToken);
        }
    }

    private async Task StopWorkersAsync(CancellationToken cancellationToken)
    {
        // Stop accepting first, so every connection accepted so far goes to a worker that is still serving.
        _listeners.StopAccepting();
        _dispatcher.Stop();
        await _pool.StopAllAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        // Registered under three service types, so the container disposes this more than once.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var signal in _signals)
        {
            signal.Dispose();
        }

        _operatorSignals.Dispose();
        _upgrade.Dispose();
        _takeover?.Dispose();
        _admin?.Dispose();
        _notifier?.Dispose();
        _pool.Dispose(); // stops the monitor and any operation under way (the pool's Stopping token)
        _rotation.Dispose();
    }

    private void BeginStopping()
    {
        _pool.BeginStopping();
        _reports?.Stopping();
    }

    private void StartWorkers()
    {
        try
        {
            // Workers read the app's own configuration, so they ask for the same endpoints. Only when the
            // primary's addresses were imposed from outside that configuration (PreferHostingUrls, as
            // WebApplicationFactory.UseKestrel(port) does) are they passed on, with the real ports.
            var addresses = _server.Features.Get<IServerAddressesFeature>();
            var preferUrls = addresses?.PreferHostingUrls ?? false;
            var urls = preferUrls && addresses!.Addresses.Count > 0 ? string.Join(';', addresses.Addresses) : null;
            _pool.Open(urls, preferUrls);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or System.Net.Sockets.SocketException
            or UnauthorizedAccessException)
        {
            CannotStartWorkers(e);
            return;
        }

        OpenFilesCheck.Report(_logger, _dispatcher.FdBudget, _context.WorkerCount, _options.MaxHandoffsInFlight,
            _kestrelMaxConnections);
        _ = StartAllObservedAsync();
        var commands = new AdminCommands(_pool, _rotation, Status, _lifetime, () => UpgradeThenStopAsync());
        _admin = AdminServer.TryOpen(_pool.RuntimeDirectory!, commands.ExecuteAsync, _logger, _pool.Stopping);

        // As PID 1 in a container, orphans re-parented to this process are reaped by the .NET runtime's own
        // SIGCHLD handling (tests check it): nothing to add here.
        _ = new WorkerMonitor(_pool, _rotation, _options, _logger).RunAsync(_pool.Stopping);
        _ = new ConnectionHousekeeping(_dispatcher, _options.MaxConnectionWait, _logger).RunAsync(_pool.Stopping);

        _operatorSignals.Register();
    }

    private async Task StartAllObservedAsync()
    {
        try
        {
            await _slots.StartAllAsync(_context.WorkerCount).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // the first workers could not be started: say why and stop, never hang half-started
        catch (Exception e)
#pragma warning restore CA1031
        {
            CannotStartWorkers(e);
        }
    }

    private void CannotStartWorkers(Exception e)
    {
        PrimaryLog.CannotStartWorkers(_logger, e);
        Environment.ExitCode = 1;
        _lifetime.StopApplication();
    }

    private void EnsureClustered()
    {
        if (_context.Role != ClusterRole.Primary)
        {
            throw new InvalidOperationException("This process runs no workers (Cluster:Workers is 0, or the platform cannot pass " +
                "sockets between processes), so there is nothing to restart or scale.");
        }
    }
}
