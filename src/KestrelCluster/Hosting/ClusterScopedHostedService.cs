// Runs a hosted service only in the processes a predicate on IClusterContext selects; elsewhere it is never created.
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Hosting;

internal sealed class ClusterScopedHostedService<
    [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THostedService>(IServiceProvider services,
    Func<IClusterContext, bool> runsHere) : IHostedService, IAsyncDisposable
    where THostedService : class, IHostedService
{
    private THostedService? _inner;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Without UseClusterTransport there is no cluster: the one process runs it.
        var context = services.GetService<IClusterContext>();
        if (context is not null && !runsHere(context))
        {
            return Task.CompletedTask;
        }

        _inner = ActivatorUtilities.CreateInstance<THostedService>(services);
        return _inner.StartAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _inner?.StopAsync(cancellationToken) ?? Task.CompletedTask;

    public ValueTask DisposeAsync() => Disposal.DisposeAsync(_inner);
}
