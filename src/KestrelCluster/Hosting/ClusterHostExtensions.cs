// The one-line guard for startup work in Program.cs: is this process the cluster's primary (a supervisor that serves no
// request), before Build() and after it. Startup work the app needs to serve — loading a cache, a model, a lookup table —
// belongs where requests are served: not in the primary.
using KestrelCluster;
using KestrelCluster.Protocol;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>Where the app is running: <c>if (!builder.IsClusterPrimary())</c> guards startup work in <c>Program.cs</c>.</summary>
public static class ClusterHostExtensions
{
    /// <summary>
    /// Whether this process is the primary of a cluster: it runs <c>Program.cs</c> to learn the endpoints, then only
    /// accepts connections and supervises the workers. False in a worker, and when the app is not clustered
    /// (<c>Cluster:Workers</c> 0, no <c>UseClusterTransport</c>, under <c>dotnet watch</c>): those serve requests.
    /// Call it after <c>UseClusterTransport</c>; the options are read as the host will read them.
    /// </summary>
    /// <param name="builder">The application builder.</param>
    /// <returns>Whether this process is the primary.</returns>
    public static bool IsClusterPrimary(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (Environment.GetEnvironmentVariable(WorkerIdentity.WorkerIdVariable) is not null
            || !builder.Services.Any(d => d.ServiceType == typeof(ClusterContext)))
        {
            return false;
        }

        return WillBePrimary(builder.Services);
    }

    /// <summary>
    /// Whether the options registered in <paramref name="services"/> so far (UseClusterTransport's: the Cluster section,
    /// then its delegate) make this process a primary rather than a standalone one. Options that do not bind count as a
    /// primary: validation at start reports them.
    /// </summary>
    internal static bool WillBePrimary(IServiceCollection services)
    {
        var options = new ClusterOptions();
        try
        {
            foreach (var configure in services.Where(d => d.ServiceType == typeof(IConfigureOptions<ClusterOptions>))
                .Select(d => d.ImplementationInstance).OfType<IConfigureOptions<ClusterOptions>>())
            {
                configure.Configure(options);
            }
        }
        catch (InvalidOperationException)
        {
            return true;
        }

        return ClusterContext.ForPrimary(Options.Options.Create(options)).Role == ClusterRole.Primary;
    }

    /// <summary>
    /// Whether this process is the primary of a cluster (see <see cref="IsClusterPrimary(IHostApplicationBuilder)"/>),
    /// once the host is built.
    /// </summary>
    /// <param name="host">The host (a <c>WebApplication</c>).</param>
    /// <returns>Whether this process is the primary.</returns>
    public static bool IsClusterPrimary(this IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.Services.GetService<IClusterContext>()?.Role == ClusterRole.Primary;
    }
}
