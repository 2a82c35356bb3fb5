// Tells the primary this worker is ready once the host has started: Kestrel has bound (registered) every
// endpoint and the app's startup code has run. Only then does the primary route connections here. It also writes the
// worker's one startup line: workers share the primary's console, and N copies of the host's banner ("Now listening
// on", "Application started. Press Ctrl+C…", the content root) said nothing the primary had not said already.
// With Cluster:WarmUpPath, the worker first warms up (WorkerWarmUp) and is ready once warm.
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker;

internal sealed class WorkerReadiness(WorkerControlChannel channel, IHostApplicationLifetime lifetime, IServer server,
    WorkerIdentity identity, WorkerWarmUp warmUp, ILogger<WorkerReadiness> logger) : IHostedService
{
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
            WorkerLog.WarmUpSkipped(logger, identity.WorkerId, e.Message, e);
        }

        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return;
        }

        channel.SendReady();
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        WorkerLog.Serving(logger, identity.WorkerId, identity.SlotIndex, Environment.ProcessId, string.Join(", ", addresses));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
