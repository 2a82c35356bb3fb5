// A WebApplicationFactory for a cluster app: the test process hosts the primary (real Kestrel on a loopback port), the
// primary starts real worker processes, and each worker runs this factory's ConfigureWebHost on its own host, as the
// primary did. Test intent that is code — ConfigureServices, ConfigureTestServices, ConfigureLogging — and settings —
// UseSetting, UseEnvironment, in-memory configuration — so reach the processes that serve the requests.
using System.Diagnostics;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Testing;

/// <summary>
/// A <see cref="WebApplicationFactory{TEntryPoint}"/> for an app that calls <c>UseClusterTransport()</c>. The factory
/// starts the primary in the test process on real Kestrel (<c>http://127.0.0.1:{port}</c>, a free port; the client from
/// <see cref="WebApplicationFactory{TEntryPoint}.CreateClient()"/> is set up for it), and every worker process it starts
/// runs this factory's <see cref="WebApplicationFactory{TEntryPoint}.ConfigureWebHost(IWebHostBuilder)"/> too: a
/// service replaced with <c>ConfigureTestServices</c> is replaced in the workers that serve the requests.
/// </summary>
/// <remarks>
/// <para>
/// Each worker creates an instance of the factory type with its public parameterless constructor (required; keep it
/// free of side effects) and calls <c>ConfigureWebHost</c> on it; the instance is never started.
/// <see cref="IsClusterWorker"/> tells that call apart. <c>ConfigureWebHost</c> runs again in each worker process, so
/// state the test computes (a container's connection string, a temporary folder) does not reach the workers through
/// the factory's fields: put it in environment variables, which workers inherit from the test process (and
/// configuration reads), or in settings every process computes the same way.
/// </para>
/// <para>
/// <see cref="WebApplicationFactory{TEntryPoint}.WithWebHostBuilder(Action{IWebHostBuilder})"/> is refused when the
/// derived factory starts: WebApplicationFactory serves a derived factory in process through TestServer (never through
/// the workers), and its delegate cannot cross into another process. Use one subclass per variation instead.
/// </para>
/// <para>
/// Disposing the factory stops the primary, which stops every worker gracefully (their hosted services'
/// <c>StopAsync</c> runs) within the host's shutdown timeout.
/// </para>
/// <para>
/// The server starts (on the first <c>CreateClient</c>, <c>Services</c> or <c>StartServer</c>) once every worker is
/// ready, so the first requests are spread over all of them; it throws, naming the workers' states, if they are not
/// ready within <see cref="ClusterOptions.WorkerStartTimeout"/>.
/// </para>
/// </remarks>
/// <typeparam name="TEntryPoint">A type in the entry point assembly of the application (typically <c>Program</c>).</typeparam>
public class ClusterWebApplicationFactory<TEntryPoint> : WebApplicationFactory<TEntryPoint>
    where TEntryPoint : class
{
    /// <summary>Creates the factory: real Kestrel on <c>127.0.0.1</c>, on a port the system picks.</summary>
    public ClusterWebApplicationFactory()
    {
        if (!IsClusterWorker)
        {
            UseKestrel(0);
        }
    }

    /// <summary>
    /// <see langword="true"/> when this instance was created by a worker process to run <c>ConfigureWebHost</c> there;
    /// <see langword="false"/> in the test process.
    /// </summary>
    protected static bool IsClusterWorker => AppContext.GetData(TestFactoryReference.WorkerSwitch) is true;

    /// <inheritdoc />
    protected override IHost CreateHost(IHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var type = GetType();
        if (type.GetConstructor(Type.EmptyTypes) is null)
        {
            throw new InvalidOperationException($"{type.FullName} needs a public parameterless constructor: each worker process " +
                "creates one to run its ConfigureWebHost. Pass test state to the workers in environment variables, which they " +
                "inherit, instead of constructor arguments.");
        }

        if (CreatedForWithWebHostBuilder())
        {
            throw new InvalidOperationException($"{type.FullName}.WithWebHostBuilder(...) cannot configure a cluster: the factory it " +
                "returns serves requests in this process through TestServer, never through the workers, and its delegate cannot " +
                "cross into the worker processes. Put the configuration in ConfigureWebHost of a subclass of " +
                $"{type.Name} (one subclass per variation).");
        }

        var settings = new Dictionary<string, string?>
        {
            [TestFactoryReference.AssemblyKey] = type.Assembly.Location,
            [TestFactoryReference.TypeKey] = type.FullName,
        };
        builder.ConfigureAppConfiguration(configuration => configuration.AddInMemoryCollection(settings));
        builder.ConfigureServices(services => services.AddSingleton<IStartupFilter, ImposedPortGate>());
        var host = base.CreateHost(builder);
        try
        {
            ClusterReadiness.WaitForEveryWorker(host.Services);
        }
        catch
        {
            host.StopAsync().GetAwaiter().GetResult(); // stops the workers it started: a failed start leaves no process behind
            host.Dispose();
            throw;
        }

        return host;
    }

    /// <summary>
    /// Whether this host is built for a factory that <c>WithWebHostBuilder</c> derived from this one: the derived factory
    /// (private to WebApplicationFactory) builds its host through this factory's CreateHost, with its delegate added and
    /// with TestServer, since it does not inherit UseKestrel.
    /// </summary>
    private static bool CreatedForWithWebHostBuilder() =>
        new StackTrace().GetFrames().Any(frame => frame.GetMethod() is { Name: nameof(CreateHost) } method &&
            method.DeclaringType?.Name == "DelegatedWebApplicationFactory");
}
