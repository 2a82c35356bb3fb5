// Tells the primary this worker is ready once the host has started: Kestrel has bound (registered) every
// endpoint and the app's startup code has run. Only then does the primary route connections here.
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Worker;

internal sealed class WorkerReadiness(WorkerControlChannel channel, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(channel.SendReady);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
