// The supervisor: starts the workers once the primary's server is bound, replaces the ones that exit, and
// stops them all gracefully when the host stops.
using System.Security.Cryptography;
using KestrelCluster.Hosting;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using System.Net.Sockets;

namespace KestrelCluster.Primary;

internal sealed class ClusterSupervisor : IHostedService, IDisposable
{
    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_maxBackoff = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan s_stableAfter = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_channelLossGrace = TimeSpan.FromSeconds(5);

    private readonly ClusterOptions _options;
    private readonly ClusterContext _context;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly IServer _server;
    private readonly PrimaryListenerTable _listeners;
    private readonly HandoffDispatcher _dispatcher;
    private readonly WorkerLauncher _launcher;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, WorkerProcess> _workers = [];
    private readonly CancellationTokenSource _stopping = new();
    private int[] _consecutiveFailures = [];
    private ControlServer? _control;
    private string? _urls;
    private bool _preferUrls;
    private int _nextWorkerId;
    private bool _anyWorkerReady;

    public ClusterSupervisor(IOptions<ClusterOptions> options, ClusterContext context, IHostApplicationLifetime lifetime, IServer server,
        PrimaryListenerTable listeners, HandoffDispatcher dispatcher, WorkerLauncher launcher, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _context = context;
        _lifetime = lifetime;
        _server = server;
        _listeners = listeners;
        _dispatcher = dispatcher;
        _launcher = launcher;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("KestrelCluster.Primary");
    }

    /// <summary>The control socket's path, once workers are being started (tests use it).</summary>
    internal string? ControlSocketPath => _control?.SocketPath;

    /// <summary>The workers alive now.</summary>
    internal IReadOnlyList<WorkerProcess> Workers
    {
        get
        {
            lock (_lock)
            {
                return [.. _workers.Values.OrderBy(w => w.Slot)];
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_context.Role != ClusterRole.Primary)
        {
            if (_options.Workers > 0 && !ClusterContext.PlatformSupportsHandoff)
            {
                PrimaryLog.PlatformUnsupported(_logger, Environment.OSVersion.ToString());
            }

            return Task.CompletedTask;
        }

        _consecutiveFailures = new int[_context.WorkerCount];

        // Workers start once the server has bound every endpoint: a taken port fails the primary before any worker exists.
        _lifetime.ApplicationStarted.Register(StartWorkers);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_context.Role != ClusterRole.Primary || _stopping.IsCancellationRequested)
        {
            return;
        }

        _stopping.Cancel();

        // Stop accepting first, so every connection accepted so far goes to a worker that is still serving.
        _listeners.StopAccepting();
        _dispatcher.Stop();

        var workers = Workers;
        PrimaryLog.StoppingWorkers(_logger, workers.Count);
        foreach (var worker in workers)
        {
            if (worker.Channel is null)
            {
                worker.Kill(); // never connected: it serves nothing yet
            }
            else
            {
                // A closed channel means the worker is already on its way out (it got the signal too).
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

        _control?.Dispose();
    }

    public void Dispose()
    {
        foreach (var worker in Workers)
        {
            worker.Kill();
        }

        _control?.Dispose();
        _stopping.Dispose();
    }

    private void StartWorkers()
    {
        try
        {
            // Workers read the app's own configuration, so they ask for the same endpoints. Only when the
            // primary's addresses were imposed from outside that configuration (PreferHostingUrls, as
            // WebApplicationFactory.UseKestrel(port) does) are they passed on, with the real ports.
            var addresses = _server.Features.Get<IServerAddressesFeature>();
            _preferUrls = addresses?.PreferHostingUrls ?? false;
            _urls = _preferUrls && addresses!.Addresses.Count > 0 ? string.Join(';', addresses.Addresses) : null;
            _control = new ControlServer(FindWorker, OnAuthenticated, _loggerFactory.CreateLogger("KestrelCluster.Primary.ControlServer"));
            var (fileName, arguments) = _launcher.Command;
            PrimaryLog.StartingWorkers(_logger, _context.WorkerCount, fileName, string.Join(' ', arguments));
            for (var slot = 0; slot < _context.WorkerCount; slot++)
            {
                Spawn(slot);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or SocketException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            PrimaryLog.CannotStartWorkers(_logger, e);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
        }
    }

    private void Spawn(int slot)
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        var id = Interlocked.Increment(ref _nextWorkerId);
        var secret = RandomNumberGenerator.GetBytes(ControlFrames.SecretLength);
        var worker = new WorkerProcess(id, slot, secret);
        var identity = new WorkerIdentity(id, slot, _context.WorkerCount, _control!.SocketPath, secret, _urls, _preferUrls);
        lock (_lock)
        {
            _workers[id] = worker;
        }

        try
        {
            worker.Start(_launcher.CreateStartInfo(identity));
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            lock (_lock)
            {
                _workers.Remove(id);
            }

            PrimaryLog.SpawnFailed(_logger, id, slot, e);
            _ = RespawnLaterAsync(worker, exitStatus: "it could not be started");
            return;
        }

        PrimaryLog.WorkerStarted(_logger, id, slot, worker.ProcessId);
        _ = WatchAsync(worker);
    }

    private async Task WatchAsync(WorkerProcess worker)
    {
        var started = await Task.WhenAny(worker.Ready, worker.Exited, Task.Delay(_options.WorkerStartTimeout, _stopping.Token)).ConfigureAwait(false);
        if (!worker.IsReady && !worker.HasExited && !_stopping.IsCancellationRequested && started is not null)
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
        if (_stopping.IsCancellationRequested)
        {
            PrimaryLog.WorkerExited(_logger, worker.Id, worker.ProcessId, exitCode);
            return;
        }

        await RespawnLaterAsync(worker, DescribeExit(exitCode)).ConfigureAwait(false);
    }

    /// <summary>"exit code 3", or "killed by SIGKILL" (the runtime reports death by signal N as 128 + N).</summary>
    internal static string DescribeExit(int exitCode) => exitCode switch
    {
        137 => "killed by SIGKILL",
        143 => "killed by SIGTERM",
        134 => "aborted (SIGABRT)",
        139 => "crashed (SIGSEGV)",
        > 128 and < 160 => $"killed by signal {exitCode - 128}",
        _ => $"exit code {exitCode}",
    };

    private async Task RespawnLaterAsync(WorkerProcess worker, string exitStatus)
    {
        var slot = worker.Slot;
        var wasReady = worker.IsReady;
        var ranFor = worker.ProcessId == 0 ? TimeSpan.Zero : DateTimeOffset.UtcNow - worker.StartedAt;
        int failures;
        lock (_lock)
        {
            failures = wasReady && ranFor >= s_stableAfter ? 0 : ++_consecutiveFailures[slot];
            if (failures == 0)
            {
                _consecutiveFailures[slot] = 0;
            }
        }

        if (!_anyWorkerReady && !wasReady && failures >= 3)
        {
            // The app cannot start at all (it throws at startup): looping would hide that. Stop with the error.
            PrimaryLog.NoWorkerEverStarted(_logger, slot, failures, exitStatus);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return;
        }

        var delay = failures == 0 ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(s_maxBackoff.Ticks, s_firstBackoff.Ticks << Math.Min(failures - 1, 20)));
        PrimaryLog.ReplacingWorker(_logger, worker.Id, slot, worker.ProcessId, exitStatus, (long)delay.TotalMilliseconds);
        try
        {
            await Task.Delay(delay, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        Spawn(slot);
    }

    private WorkerProcess? FindWorker(int id)
    {
        lock (_lock)
        {
            return _workers.GetValueOrDefault(id);
        }
    }

    private void OnAuthenticated(WorkerProcess worker, Socket socket)
    {
        var channel = new WorkerChannel(worker, socket, _dispatcher, _listeners, _options.MaxHandoffsInFlight, _loggerFactory.CreateLogger("KestrelCluster.Primary.WorkerChannel"));
        channel.BecameReady += c =>
        {
            _anyWorkerReady = true;
            c.Worker.MarkReady();
            PrimaryLog.WorkerReady(_logger, c.Worker.Id, c.Worker.Slot, c.Worker.ProcessId);
        };
        worker.Channel = channel;
        _ = RunChannelAsync(channel);
    }

    private async Task RunChannelAsync(WorkerChannel channel)
    {
        await channel.RunAsync().ConfigureAwait(false);

        // A worker without its control channel gets no connections and could never be told to stop. It may be
        // on its way out already (a signal to the whole process group closes its channel as it exits): give it
        // a moment, then end it; the watcher replaces it.
        if (!_stopping.IsCancellationRequested)
        {
            await Task.WhenAny(channel.Worker.Exited, Task.Delay(s_channelLossGrace, _stopping.Token)).ConfigureAwait(false);
            if (!channel.Worker.HasExited && !_stopping.IsCancellationRequested)
            {
                channel.Worker.Kill();
            }
        }
    }
}
