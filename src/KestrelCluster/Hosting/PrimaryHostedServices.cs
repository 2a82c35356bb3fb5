// The hosted services the host starts, as the primary sees them. The primary is a supervisor, not one more copy of the
// app: the app's own hosted services (types defined in the app's assemblies, see AppAssemblies) do not start there — a
// queue consumer runs N times, not N + 1, and what they load stays out of the primary's memory. Everything else starts
// as usual: the web server, the framework's and the libraries' services (health-check publishers, OpenTelemetry), the
// cluster's own, and the app's services added with AddPrimaryHostedService or AddHostedServiceEverywhere.
//
// It works by answering the host's one request for IEnumerable<IHostedService> (the container prefers an exact
// registration to its own enumerable): each registration is created here, in order, and the app's are left out —
// never created at all. What it creates it disposes, as the container would.
using System.Collections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Hosting;

internal sealed class PrimaryHostedServices : IEnumerable<IHostedService>, IAsyncDisposable
{
    private readonly List<IHostedService> _services = [];
    private readonly List<object> _created = [];

    private PrimaryHostedServices(IServiceProvider provider, IServiceCollection registrations)
    {
        var isPrimary = provider.GetRequiredService<ClusterContext>().Role == ClusterRole.Primary;
        var skipped = new List<string>();
        foreach (var descriptor in registrations.Where(d => d.ServiceType == typeof(IHostedService) && !d.IsKeyedService).ToList())
        {
            var type = TypeOf(descriptor);
            if (isPrimary && type is not null && AppAssemblies.Contains(type))
            {
                skipped.Add(type.FullName ?? type.Name);
                continue;
            }

            _services.Add(Create(provider, descriptor));
        }

        if (skipped.Count > 0)
        {
            HostingLog.HostedServicesLeftToWorkers(provider.GetRequiredService<ILoggerFactory>().CreateLogger("KestrelCluster.Primary"),
                skipped.Count, string.Join(", ", skipped));
        }
    }

    /// <summary>Answers the host's request for its hosted services (in the primary's container only).</summary>
    public static void Register(IServiceCollection services) =>
        services.AddSingleton<IEnumerable<IHostedService>>(provider => new PrimaryHostedServices(provider, services));

    /// <summary>
    /// The type a registration makes: its implementation type, its instance's, or what its factory declares it returns
    /// (AddHostedService(sp => new X(…)) is a Func returning X), else the type that declares the factory.
    /// </summary>
    internal static Type? TypeOf(ServiceDescriptor descriptor)
    {
        if (descriptor.ImplementationType is { } type)
        {
            return type;
        }

        if (descriptor.ImplementationInstance is { } instance)
        {
            return instance.GetType();
        }

        if (descriptor.ImplementationFactory is { } factory)
        {
            var returns = factory.GetType().GenericTypeArguments is [_, var result] ? result : null;
            return returns is not null && returns != typeof(IHostedService) && returns != typeof(object)
                ? returns
                : factory.Method.DeclaringType;
        }

        return null;
    }

    public IEnumerator<IHostedService> GetEnumerator() => _services.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public async ValueTask DisposeAsync()
    {
        for (var i = _created.Count - 1; i >= 0; i--)
        {
            await Disposal.DisposeAsync(_created[i]).ConfigureAwait(false);
        }
    }

    private IHostedService Create(IServiceProvider provider, ServiceDescriptor descriptor)
    {
        if (descriptor.ImplementationInstance is IHostedService instance)
        {
            return instance; // the app owns an instance it registered; the container never disposes those either
        }

        var created = descriptor.ImplementationFactory is { } factory
            ? factory(provider)
            : ActivatorUtilities.CreateInstance(provider, descriptor.ImplementationType!);
        _created.Add(created);
        return (IHostedService)created;
    }
}
