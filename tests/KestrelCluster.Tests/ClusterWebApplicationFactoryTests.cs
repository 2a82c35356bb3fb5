// ClusterWebApplicationFactory (package KestrelCluster.Testing): what a test's factory subclass configures reaches every
// worker process — a service replaced with ConfigureTestServices, UseSetting, UseEnvironment, in-memory configuration,
// ConfigureServices and ConfigureLogging — and disposing it stops each worker gracefully. What cannot cross (a
// WithWebHostBuilder delegate, constructor state) is said, not dropped.
using KestrelCluster.Primary;
using KestrelCluster.Primary.Supervision;
using KestrelCluster.TestApp;
using KestrelCluster.Testing;
using KestrelCluster.Tests.TestSupport;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ClusterWebApplicationFactoryTests
{
    [Fact]
    public async Task ASubclassesConfigureWebHost_ReachesEveryWorker_AndDisposeStopsThemGracefully()
    {
        var record = Directory.CreateTempSubdirectory("kc-factory-").FullName;
        using var environment = QuietTwoWorkers(new() { [StopRecorder.FileVariable] = record });
        var factory = new FakeGreeterFactory();
        IReadOnlyList<WorkerProcess> workers = [];
        var answers = new List<string>();
        try
        {
            using var client = factory.CreateClient();
            workers = factory.Services.GetRequiredService<ClusterSupervisor>().WorkerProcesses;

            // A new connection per request: one kept-alive connection would stay with one worker.
            for (var i = 0; i < 20; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/greet");
                request.Headers.ConnectionClose = true;
                using var response = await client.SendAsync(request);
                answers.Add(await response.EnsureSuccessStatusCode().Content.ReadAsStringAsync());
            }

            workers = factory.Services.GetRequiredService<ClusterSupervisor>().WorkerProcesses;
        }
        finally
        {
            try
            {
                await factory.DisposeAsync();
            }
            finally
            {
                foreach (var worker in workers)
                {
                    TestProcesses.KillIfAlive(worker.ProcessId);
                }
            }
        }

        try
        {
            // Every answer came from a worker that ran the factory's ConfigureWebHost, not from the app's own setup.
            Assert.All(answers, answer =>
            {
                Assert.StartsWith("fake greeter;", answer, StringComparison.Ordinal);
                Assert.Contains("greeting=from the factory's UseSetting;", answer, StringComparison.Ordinal);
                Assert.Contains("environment=Testing;", answer, StringComparison.Ordinal);
                Assert.Contains("flavour=in-memory;", answer, StringComparison.Ordinal);
            });
            var pids = answers.Select(a => int.Parse(a[(a.LastIndexOf("pid=", StringComparison.Ordinal) + 4)..].Trim(),
                System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
            Assert.True(pids.Count >= 2, $"20 new connections were served by {pids.Count} worker(s): {string.Join(", ", pids)}");
            Assert.DoesNotContain(Environment.ProcessId, pids);

            // Dispose: each worker's hosted service (added by ConfigureServices) logged its StopAsync through the provider
            // ConfigureLogging added, and each exited 0 — a stop, not a kill.
            Assert.Equal(2, workers.Count);
            foreach (var worker in workers)
            {
                Assert.True(worker.HasExited, $"{worker} still runs after the factory was disposed");
                Assert.Equal(0, await worker.Exited);
                var logged = Path.Combine(record, worker.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
                Assert.True(File.Exists(logged), $"{worker} logged nothing through the factory's provider");
                Assert.Contains($"stopping in pid {worker.ProcessId}", File.ReadAllLines(logged));
            }
        }
        finally
        {
            Directory.Delete(record, recursive: true);
        }
    }

    [Fact]
    public async Task WithWebHostBuilder_IsRefusedAtStart_NamingItAndWhatToDoInstead()
    {
        using var environment = QuietTwoWorkers([]);
        await using var factory = new FakeGreeterFactory();
        await using var derived = factory.WithWebHostBuilder(builder => builder.UseSetting("TestApp:Greeting", "lost"));

        // Its delegate could not reach the workers, and WebApplicationFactory would serve it through TestServer in this
        // process: refused before anything starts, so no worker is left behind either.
        var error = Assert.Throws<InvalidOperationException>(() => derived.CreateClient());
        Assert.Contains($"{typeof(FakeGreeterFactory).FullName}.WithWebHostBuilder", error.Message, StringComparison.Ordinal);
        Assert.Contains("ConfigureWebHost of a subclass", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnderTheFactory_ThePrimarySaysTheWorkersRunItsConfigureWebHost()
    {
        using var environment = QuietTwoWorkers(new() { ["Logging__LogLevel__KestrelCluster"] = "Information" });
        await using var factory = new LoggedFakeGreeterFactory();
        IReadOnlyList<WorkerProcess> workers = [];
        try
        {
            factory.StartServer();
            workers = factory.Services.GetRequiredService<ClusterSupervisor>().WorkerProcesses;
        }
        finally
        {
            await factory.DisposeAsync();
            foreach (var worker in workers)
            {
                TestProcesses.KillIfAlive(worker.ProcessId);
            }
        }

        var said = Assert.Single(LoggedFakeGreeterFactory.Logs.Entries, e => e.Message.Contains("Each worker runs", StringComparison.Ordinal));
        Assert.Contains(typeof(LoggedFakeGreeterFactory).FullName!, said.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(LoggedFakeGreeterFactory.Logs.Entries, e => e.Message.Contains("does not reach the workers", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFactoryWithoutAParameterlessConstructor_FailsAtStart_NamingTheType()
    {
        using var environment = QuietTwoWorkers([]);
        await using var factory = new StatefulFactory("state a worker could not rebuild");
        var error = Assert.Throws<InvalidOperationException>(() => factory.CreateClient());
        Assert.Contains(typeof(StatefulFactory).FullName!, error.Message, StringComparison.Ordinal);
        Assert.Contains("parameterless constructor", error.Message, StringComparison.Ordinal);
    }

    private static EnvironmentScope QuietTwoWorkers(Dictionary<string, string?> more)
    {
        var variables = new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "2",
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__KestrelCluster"] = "Warning",
        };
        foreach (var (name, value) in more)
        {
            variables[name] = value;
        }

        return new EnvironmentScope(variables);
    }
}

/// <summary>A test's factory, as a user writes one. Every worker creates one of these and runs its ConfigureWebHost.</summary>
public sealed class FakeGreeterFactory : ClusterWebApplicationFactory<TestApp.Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("TestApp:Greeting", "from the factory's UseSetting");
        builder.UseEnvironment("Testing");
        builder.ConfigureAppConfiguration(configuration =>
            configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TestApp:Flavour"] = "in-memory" }));
        builder.ConfigureTestServices(services => services.AddSingleton<IGreeter, FakeGreeter>());
        builder.ConfigureServices(services => services.AddHostedService<StopRecorder>());
        builder.ConfigureLogging(logging => logging.AddProvider(new RecordingLoggerProvider())
            .AddFilter<RecordingLoggerProvider>(typeof(StopRecorder).FullName, LogLevel.Information));
    }
}

/// <summary>The same, with the primary's log kept (in workers, the provider is created too, and unused).</summary>
public sealed class LoggedFakeGreeterFactory : ClusterWebApplicationFactory<TestApp.Program>
{
    internal static CapturingLoggerProvider Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder) => builder.ConfigureLogging(logging => logging.AddProvider(Logs));
}

/// <summary>Constructor state: a worker cannot rebuild it, so the factory refuses to start.</summary>
public sealed class StatefulFactory(string state) : ClusterWebApplicationFactory<TestApp.Program>
{
    public string State { get; } = state;
}

internal sealed class FakeGreeter : IGreeter
{
    public string Greet() => "fake greeter";
}

/// <summary>Logs when its host stops it: in a worker, that is the factory's dispose reaching the worker gracefully.</summary>
internal sealed partial class StopRecorder(ILogger<StopRecorder> logger) : IHostedService
{
    public const string FileVariable = "KC_TEST_STOP_RECORD_DIR";

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Stopping(logger, Environment.ProcessId);
        return Task.CompletedTask;
    }

    [LoggerMessage(1, LogLevel.Information, "stopping in pid {ProcessId}")]
    private static partial void Stopping(ILogger logger, int processId);
}

/// <summary>
/// Appends StopRecorder's messages to a file of this process's own (processes stop together, and appends from several
/// processes to one file can overwrite each other) in the folder named by the environment, which workers inherit.
/// </summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger();

    public void Dispose()
    {
    }

    private sealed class Logger : ILogger
    {
        private static readonly Lock s_lock = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            if (Environment.GetEnvironmentVariable(StopRecorder.FileVariable) is { Length: > 0 } folder)
            {
                lock (s_lock)
                {
                    File.AppendAllText(Path.Combine(folder, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                        formatter(state, exception) + "\n");
                }
            }
        }
    }
}
