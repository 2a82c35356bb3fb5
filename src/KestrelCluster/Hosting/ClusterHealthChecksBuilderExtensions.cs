// AddClusterHealthCheck: the cluster's readiness as an ASP.NET Core health check.
using KestrelCluster.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary><see cref="IHealthChecksBuilder"/> extension methods for the KestrelCluster health check.</summary>
public static class ClusterHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check of the whole cluster, as the primary sees it (whichever worker runs the check asks the
    /// primary): <see cref="HealthStatus.Healthy"/> when every worker slot has a ready worker,
    /// <see cref="HealthStatus.Degraded"/> when some do not, and the failure status (Unhealthy by default) when fewer
    /// than <paramref name="minimumReadyWorkers"/> are ready, while the cluster is stopping, or when the primary does
    /// not answer. Use it for a readiness probe: an instance that is stopping leaves rotation before it drains. When
    /// the app is not clustered the check is Healthy.
    /// </summary>
    /// <param name="builder">The <see cref="IHealthChecksBuilder"/>.</param>
    /// <param name="minimumReadyWorkers">The fewest ready workers that are not a failure; 1 by default.</param>
    /// <param name="name">The check's name; <c>cluster</c> by default.</param>
    /// <param name="failureStatus">The status reported on failure; <see cref="HealthStatus.Unhealthy"/> when null.</param>
    /// <param name="tags">Tags to filter the check with (<c>MapHealthChecks</c>'s predicate).</param>
    /// <returns>The <see cref="IHealthChecksBuilder"/>.</returns>
    public static IHealthChecksBuilder AddClusterHealthCheck(this IHealthChecksBuilder builder, int minimumReadyWorkers = 1,
        string name = "cluster", HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentOutOfRangeException.ThrowIfNegative(minimumReadyWorkers);
        return builder.Add(new HealthCheckRegistration(name,
            services =>
            {
                ClusterStatusSource.EnsureClusterTransport(services, nameof(AddClusterHealthCheck));
                return new ClusterHealthCheck(services, minimumReadyWorkers);
            },
            failureStatus, tags));
    }
}
