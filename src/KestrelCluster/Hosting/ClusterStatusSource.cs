// Where a process gets the cluster's status from: a worker asks its primary over the control channel (requests land
// on workers, and only the primary sees the whole cluster), the primary writes it itself, and a process that runs
// no workers describes itself in the same shape.
using KestrelCluster.Primary;
using KestrelCluster.Primary.Operations;
using KestrelCluster.Worker.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Hosting;

internal static class ClusterStatusSource
{
    /// <summary>Fails at startup when the app maps the status or the health check without the cluster transport.</summary>
    public static void EnsureClusterTransport(IServiceProvider services, string feature)
    {
        if (services.GetService<ClusterContext>() is null)
        {
            throw new InvalidOperationException($"{feature} needs the cluster transport: call builder.WebHost.UseClusterTransport().");
        }
    }

    /// <summary>The cluster's status as UTF-8 JSON (see ClusterStatusReport for the shape).</summary>
    public static Task<byte[]> GetAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var context = services.GetRequiredService<ClusterContext>();
        return context.Role switch
        {
            ClusterRole.Worker => services.GetRequiredService<WorkerControlChannel>().StatusQueries.QueryAsync(cancellationToken),
            ClusterRole.Primary => Task.FromResult(services.GetRequiredService<ClusterSupervisor>().Status.Write()),
            _ => Task.FromResult(ClusterStatusReport.WriteStandalone(ClusterStatusReport.AppVersion,
                [.. services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? []])),
        };
    }
}
