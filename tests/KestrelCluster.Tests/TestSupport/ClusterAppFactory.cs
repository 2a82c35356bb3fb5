// The sample app as a real cluster under WebApplicationFactory: Kestrel in this test process is the primary,
// and it starts real worker processes. Configuration that workers must see goes through the environment.
using KestrelCluster.Primary;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Tests.TestSupport;

internal sealed class ClusterAppFactory : WebApplicationFactory<Program>
{
    private readonly EnvironmentScope _environment;
    private readonly Action<IServiceCollection>? _configureServices;
    private readonly bool _imposesPort;
    private bool _started;

    /// <param name="environment">Configuration for the primary and its workers, as environment variables.</param>
    /// <param name="port">When set, UseKestrel(port): the factory imposes http://127.0.0.1:port on the primary.</param>
    /// <param name="configureServices">Services for the primary (this process) only.</param>
    public ClusterAppFactory(IReadOnlyDictionary<string, string?> environment, int? port = null, Action<IServiceCollection>? configureServices = null)
    {
        _configureServices = configureServices;
        _environment = new EnvironmentScope(new Dictionary<string, string?>(environment)
        {
            // Quiet workers: the test output stays readable. Warnings and errors still show.
            ["Logging__LogLevel__Default"] = environment.GetValueOrDefault("Logging__LogLevel__Default") ?? "Warning",
            ["Logging__LogLevel__KestrelCluster"] = environment.GetValueOrDefault("Logging__LogLevel__KestrelCluster") ?? "Warning",
        });

        if (port is { } p)
        {
            _imposesPort = true;
            UseKestrel(p);
        }
        else
        {
            UseKestrel();
        }
    }

    /// <summary>Every message the primary (this process) logs.</summary>
    public CapturingLoggerProvider Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.ConfigureLogging(logging => logging.AddProvider(Logs));
        if (_imposesPort)
        {
            builder.ConfigureServices(services => services.AddSingleton<IStartupFilter, KestrelCluster.Testing.ImposedPortGate>());
        }

        if (_configureServices is not null)
        {
            builder.ConfigureServices(_configureServices);
        }
    }

    internal ClusterSupervisor Supervisor => Services.GetRequiredService<ClusterSupervisor>();

    public IReadOnlyList<string> Addresses => [.. Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses];

    /// <summary>Starts the primary and waits until <paramref name="workers"/> workers are ready.</summary>
    public async Task StartAsync(int workers)
    {
        StartServer();
        _started = true;
        await Wait.UntilAsync(() => Supervisor.WorkerProcesses.Count(w => w.IsReady) >= workers, TimeSpan.FromSeconds(60), $"{workers} workers are ready");
    }

    /// <summary>Starts the primary (no wait for workers); false if startup threw (the exception propagates).</summary>
    public new void StartServer()
    {
        base.StartServer();
        _started = true;
    }

    public IReadOnlyList<int> WorkerProcessIds() => [.. Supervisor.WorkerProcesses.Select(w => w.ProcessId)];

    public override async ValueTask DisposeAsync()
    {
        try
        {
            IReadOnlyList<int> workers = _started ? WorkerProcessIds() : [];
            try
            {
                await base.DisposeAsync();
            }
            finally
            {
                // Graceful stop ends the workers; whatever is left (a failed test) is ended here, by id.
                foreach (var pid in workers)
                {
                    TestProcesses.KillIfAlive(pid);
                }
            }
        }
        finally
        {
            _environment.Dispose();
        }
    }
}
