// Tells the primary this worker is ready once the host has started: Kestrel has bound (registered) every
// endpoint and the app's startup code has run. Only then does the primary route connections here. It also writes the
// worker's one startup line: workers share the primary's console, and N copies of the host's banner ("Now listening
// on", "Application started. Press Ctrl+C…", the content root) said nothing the primary had not said already.
// With Cluster:WarmUpPath, the worker first warms up (WorkerWarmUp) and is ready once warm.
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Lifecycle;

internal sealed class WorkerReadiness(WorkerControlChannel channel, IHostApplicationLifetime lifetime, IServer server,
    WorkerIdentity identity, WorkerWarmUp warmUp, ILoggerFactory loggers) : IHostedService
{
    // The category predates the rooms (Worker/Connections, Worker/Lifecycle); filters and docs name it.
    private readonly ILogger _logger = loggers.CreateLogger("KestrelCluster.Worker.WorkerReadiness");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _ = ReportReadyAsync());
        return Task.CompletedTask;
    }

    private async Task ReportReadyAsync()
    {
        try
        {
            await warmUp.RunAsync(lifetime.ApplicationStopping).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // a warm-up that fails in any way leaves a cold worker, never one that is not ready
        catch (Exception e)
#pragma warning restore CA1031
        {
            LifecycleLog.WarmUpSkipped(_logger, identity.WorkerId, e.Message, e);
        }

        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return;
        }

        channel.SendReady();
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        LifecycleLog.Serving(_logger, identity.WorkerId, identity.SlotIndex, Environment.ProcessId, string.Join(", ", addresses));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
