// The primary is a supervisor, not one more copy of the app: the app's own hosted services start in the workers only, and
// what they build stays out of the primary's memory; AddPrimaryHostedService and AddHostedServiceEverywhere still reach it;
// not clustered, everything runs in the one process. IsClusterPrimary guards startup work in Program.cs.
using KestrelCluster.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PrimarySupervisorTests : IDisposable
{
    private readonly string _record = Path.Combine(Path.GetTempPath(), $"kc-starts-{Guid.NewGuid():N}.txt");

    public void Dispose() => File.Delete(_record);

    [Fact]
    public async Task TheAppsHostedServices_StartInTheWorkersOnly_AndThePrimaryStaysSmallWhateverTheyHold()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["TestApp__RecordFile"] = _record;
        environment["TestApp__StartupStateMb"] = "500";
        environment["TestApp__MeterProbe"] = "true";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        await app.WaitUntilServingAsync(workers: 2);
        var workers = app.Workers();
        await Wait.UntilAsync(() => Lines("meter").Length > 0, TimeSpan.FromSeconds(15), "the primary's meter is read in the primary");

        // 2 starts of the app's hosted service, one per worker; none in the primary.
        Assert.Equal(workers.Order().Select(pid => $"app-service Worker {pid}"), Lines("app-service").Order(StringComparer.Ordinal));
        Assert.Equal([$"primary-only {app.ProcessId}"], Lines("primary-only")); // AddPrimaryHostedService: once, in the primary
        Assert.StartsWith($"meter Primary {app.ProcessId} kestrelcluster.workers=", Assert.Single(Lines("meter")), StringComparison.Ordinal);

        // 500 MiB in each worker, not in the primary.
        Assert.All(workers, pid => Assert.True(ResidentMiB(pid) > 500, $"worker {pid} holds {ResidentMiB(pid)} MiB"));
        Assert.True(ResidentMiB(app.ProcessId) < 150, $"the primary holds {ResidentMiB(app.ProcessId)} MiB");

        // Said once, naming what it left to the workers.
        Assert.Contains("The primary does not start the app's 2 hosted services (KestrelCluster.TestApp.WorkerStartup, " +
            "KestrelCluster.TestApp.StartupState): they run in the workers.", app.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NotClustered_EveryHostedServiceStartsOnce_InTheOneProcess()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 0);
        environment["TestApp__RecordFile"] = _record;
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        await app.WaitForOutputAsync("Now listening on", TimeSpan.FromSeconds(60));
        await Wait.UntilAsync(() => Lines("app-service").Length > 0 && Lines("primary-only").Length > 0, TimeSpan.FromSeconds(15),
            "the hosted services started");

        Assert.Equal([$"app-service Standalone {app.ProcessId}"], Lines("app-service"));
        Assert.Equal([$"primary-only {app.ProcessId}"], Lines("primary-only"));
        Assert.DoesNotContain("does not start the app's", app.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2", true)]
    [InlineData("0", false)]
    public async Task IsClusterPrimary_BeforeAndAfterBuild_FollowsTheOptions(string workers, bool primary)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration["Cluster:Workers"] = workers;
        builder.WebHost.UseClusterTransport();

        Assert.Equal(primary, builder.IsClusterPrimary());
        await using var app = builder.Build();
        Assert.Equal(primary, app.IsClusterPrimary());
    }

    [Fact]
    public void IsClusterPrimary_TheDelegateOfUseClusterTransportCounts_AndWithoutItNothingIsClustered()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration["Cluster:Workers"] = "2";
        Assert.False(builder.IsClusterPrimary()); // no UseClusterTransport: one process

        builder.WebHost.UseClusterTransport(o => o.Workers = 0);
        Assert.False(builder.IsClusterPrimary());
    }

    private string[] Lines(string kind) => File.Exists(_record)
        ? [.. File.ReadAllLines(_record).Where(l => l.StartsWith(kind + " ", StringComparison.Ordinal))]
        : [];

    private static long ResidentMiB(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
}
