// What a worker process starts with besides the app's own configuration: thread pools that do not spin, because
// several workers share the cores — unless the app chose a value itself.
using KestrelCluster.Primary.Launching;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class WorkerEnvironmentTests(ClusterFixture cluster)
{
    [Fact]
    public void Workers_ByDefault_ThreadPoolDoesNotSpin()
    {
        var expected = Environment.GetEnvironmentVariable(WorkerLauncher.SpinLimitVariable) ?? "0"; // a value the test runner set is the app's own

        var workers = cluster.Factory.WorkerProcessIds();

        Assert.NotEmpty(workers);
        Assert.All(workers, pid => Assert.Equal(expected, EnvironmentOf(pid).GetValueOrDefault(WorkerLauncher.SpinLimitVariable)));
    }

    [Fact]
    public async Task Workers_AppSetsTheSpinLimit_ItsValueKept()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "1",
            [WorkerLauncher.SpinLimitVariable] = "5",
        }, port: 0);
        await factory.StartAsync(workers: 1);

        var worker = Assert.Single(factory.WorkerProcessIds());
        Assert.Equal("5", EnvironmentOf(worker).GetValueOrDefault(WorkerLauncher.SpinLimitVariable));
    }

    private static Dictionary<string, string> EnvironmentOf(int pid) =>
        File.ReadAllText($"/proc/{pid}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(entry => entry.Split('=', 2))
            .Where(pair => pair.Length == 2)
            .GroupBy(pair => pair[0], StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.Last()[1], StringComparer.Ordinal);
}
