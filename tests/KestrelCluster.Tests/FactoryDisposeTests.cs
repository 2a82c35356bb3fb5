// Disposing a WebApplicationFactory stops the workers the way the host stops: gracefully, their StopAsync runs,
// exit code 0 — never a kill while the shutdown timeout has time left.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FactoryDisposeTests
{
    [Fact]
    public async Task DisposingTheFactory_StopsEveryWorkerGracefully()
    {
        var environment = ClusterFixture.Environment(certificatePath: null);
        environment["Logging__LogLevel__KestrelCluster"] = "Information"; // the primary's "exited with code" lines
        var factory = new ClusterAppFactory(environment);
        IReadOnlyList<int> workers;
        try
        {
            await factory.StartAsync(workers: 2);
            workers = factory.WorkerProcessIds();
        }
        finally
        {
            await factory.DisposeAsync();
        }

        // Exit code 0: each worker's host stopped (its hosted services' StopAsync ran) and Main returned; a kill is 137.
        var exits = factory.Logs.Entries.Where(e => e.Message.Contains(") exited with code", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, exits.Count);
        Assert.All(exits, e => Assert.EndsWith("exited with code 0.", e.Message, StringComparison.Ordinal));
        Assert.All(workers, pid => Assert.False(ProcFs.IsAlive(pid)));
    }
}
