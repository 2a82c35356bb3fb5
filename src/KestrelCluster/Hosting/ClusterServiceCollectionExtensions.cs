// Where a hosted service runs. Added with AddHostedService, the app's own run in each worker (the primary is a
// supervisor: see PrimaryHostedServices); these say otherwise: in the primary only, in one worker slot only, or in every
// process, the primary included.
using System.Diagnostics.CodeAnalysis;
using KestrelCluster;
using KestrelCluster.Hosting;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary><see cref="IServiceCollection"/> extension methods for hosted services that run once in a cluster.</summary>
public static class ClusterServiceCollectionExtensions
{
    /// <summary>
    /// Adds a hosted service that runs in the primary only — once across the cluster, like a cron job — or in the
    /// single process when the app is not clustered.
    /// </summary>
    /// <typeparam name="THostedService">The hosted service.</typeparam>
    /// <param name="services">The services.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddPrimaryHostedService<
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THostedService>(this IServiceCollection services)
        where THostedService : class, IHostedService
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddHostedService(sp => new ClusterScopedHostedService<THostedService>(sp,
            context => context.Role != ClusterRole.Worker));
    }

    /// <summary>
    /// Adds a hosted service that runs only in the worker of slot <paramref name="slotIndex"/> (its replacement runs
    /// it again), or in the single process when the app is not clustered. Use it for work that needs the app's
    /// request-serving services but must run once.
    /// </summary>
    /// <typeparam name="THostedService">The hosted service.</typeparam>
    /// <param name="services">The services.</param>
    /// <param name="slotIndex">The slot, 0 by default.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddSlotHostedService<
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THostedService>(this IServiceCollection services,
        int slotIndex = 0)
        where THostedService : class, IHostedService
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentOutOfRangeException.ThrowIfNegative(slotIndex);
        return services.AddHostedService(sp => new ClusterScopedHostedService<THostedService>(sp,
            context => context.Role == ClusterRole.Standalone || (context.Role == ClusterRole.Worker && context.SlotIndex == slotIndex)));
    }

    /// <summary>
    /// Adds a hosted service that runs in every process: the primary and each worker (the app's own hosted services added
    /// with <c>AddHostedService</c> run in the workers only). For the rare service the primary needs too, such as one that
    /// exports what every process measures.
    /// </summary>
    /// <typeparam name="THostedService">The hosted service.</typeparam>
    /// <param name="services">The services.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddHostedServiceEverywhere<
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THostedService>(this IServiceCollection services)
        where THostedService : class, IHostedService
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddHostedService(sp => new ClusterScopedHostedService<THostedService>(sp, static _ => true));
    }
}
