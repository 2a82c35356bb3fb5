// WebApplicationFactory and the workers: disposing the factory stops them the way the host stops (gracefully, their
// StopAsync runs, exit code 0 — never a kill while the shutdown timeout has time left), and what the factory adds to the
// primary only is said, not silently dropped.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FactoryDisposeTests
{
    [Fact]
    public async Task DisposingTheFactory_StopsEveryWorkerGracefully()
    {
        var factory = new ClusterAppFactory(ClusterFixture.Environment(certificatePath: null));
        IReadOnlyList<KestrelCluster.Primary.Supervision.WorkerProcess> workers;
        try
        {
            await factory.StartAsync(workers: 2);
            workers = factory.Supervisor.WorkerProcesses;
        }
        finally
        {
            await factory.DisposeAsync();
        }

        // Exit code 0: each worker's host stopped (its hosted services' StopAsync ran) and Main returned; a kill is 137.
        Assert.Equal(2, workers.Count);
        foreach (var worker in workers)
        {
            Assert.True(worker.HasExited, $"{worker} still runs after the factory was disposed");
            Assert.Equal(0, await worker.Exited);
        }
    }

    [Fact]
    public async Task UnderAFactory_ThePrimarySaysThatTheHostsCustomisationsDoNotReachTheWorkers()
    {
        var environment = ClusterFixture.Environment(certificatePath: null);
        environment["Logging__LogLevel__KestrelCluster"] = "Information";
        await using var factory = new ClusterAppFactory(environment);
        await factory.StartAsync(workers: 2);

        // Not silently: ConfigureTestServices and the like apply to the primary only, and the log says so, once.
        var warning = Assert.Single(factory.Logs.Entries, e => e.Message.Contains("does not reach the workers", StringComparison.Ordinal));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, warning.Level);
        Assert.Contains("ConfigureTestServices", warning.Message, StringComparison.Ordinal);
    }
}
