// Startup configuration: bad values fail naming the key, HTTP/3 is refused clearly, Workers = 0 is plain Kestrel.
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("Cluster__Workers", "-1", "Cluster:Workers")]
    [InlineData("Cluster__Workers", "1025", "Cluster:Workers is 1025; the limit is 1024 worker processes")]
    [InlineData("Cluster__Workers", "100000", "Cluster:Workers is 100000; the limit is 1024 worker processes")]
    [InlineData("Cluster__MinWorkerUptime", "-00:00:01", "Cluster:MinWorkerUptime")]
    [InlineData("Cluster__AcceptThreads", "0", "Cluster:AcceptThreads")]
    [InlineData("Cluster__AcceptThreads", "65", "Cluster:AcceptThreads")]
    [InlineData("Cluster__MaxHandoffsInFlight", "0", "Cluster:MaxHandoffsInFlight")]
    [InlineData("Cluster__WorkerStartTimeout", "-00:00:01", "Cluster:WorkerStartTimeout")]
    [InlineData("Cluster__WarmUpPath", "healthz", "Cluster:WarmUpPath is 'healthz'; it must be a path on this app")]
    [InlineData("Cluster__MaxWarmUpTime", "00:00:00", "Cluster:MaxWarmUpTime")]
    [InlineData("Cluster__MaxConnectionWait", "00:00:00", "Cluster:MaxConnectionWait")]
    public async Task Options_InvalidValue_StartupFailsNamingTheKey(string variable, string value, string key)
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { [variable] = value }, port: 0);

        var error = Assert.Throws<OptionsValidationException>(() => factory.StartServer());

        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_MoreThanFourWorkersPerCpu_StartsWithAWarningSayingWhy()
    {
        var workers = (4 * Environment.ProcessorCount) + 1;
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = workers.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["DOTNET_hostBuilder__reloadConfigOnChange"] = "false",
        }, port: 0);

        factory.StartServer();

        var warning = Assert.Single(factory.Logs.Entries, e => e.Message.StartsWith($"Cluster:Workers is {workers}, more than 4 per CPU", StringComparison.Ordinal));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, warning.Level);
        Assert.Contains("compete for the cores", warning.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Cluster__Scheduling", "Sticky", "Cluster:Scheduling is 'Sticky'; allowed values: RoundRobin, LeastConnections, ClientIpHash, Shared, ReusePort")]
    [InlineData("Cluster__Wrokers", "4", "'Wrokers'")]
    public async Task Options_UnknownValueOrKey_StartupFailsNamingItAndWhatIsAllowed(string variable, string value, string expected)
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { [variable] = value }, port: 0);

        var error = Assert.ThrowsAny<InvalidOperationException>(() => factory.StartServer());

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_NotANumber_StartupFailsNamingTheKey()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "many" }, port: 0);

        var error = Assert.ThrowsAny<InvalidOperationException>(() => factory.StartServer());

        Assert.Contains("Cluster:Workers", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http3Endpoint_InClusterMode_StartupFailsSayingQuicCannotBeHandedOver()
    {
        using var certificate = new TestCertificate();
        var environment = ClusterFixture.Environment(certificate.Path);
        // HTTP/3 needs TLS and a fixed port (Kestrel skips it on a dynamic one): take a free port.
        environment["Kestrel__Endpoints__Https__Url"] = $"https://127.0.0.1:{FreePort.Tcp()}";
        environment["Kestrel__Endpoints__Https__Protocols"] = "Http1AndHttp2AndHttp3";
        await using var factory = new ClusterAppFactory(environment);

        var error = Assert.ThrowsAny<Exception>(() => factory.StartServer());

        Assert.Contains("HTTP/3", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("QUIC", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Workers0_PlainKestrel_ServedByThisProcess()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "0" }, port: 0);
        factory.StartServer();

        using var client = HttpProbe.CreateClient(keepAlive: false);
        var body = await client.GetStringAsync(Assert.Single(factory.Addresses));

        Assert.Equal(Environment.ProcessId, HttpProbe.ServedBy(body));
        Assert.Empty(factory.Supervisor.WorkerProcesses);
    }

    [Fact]
    public async Task Platform_WithoutFdPassing_OneWarningAndPlainKestrel()
    {
        var probe = KestrelCluster.ClusterContext.PlatformProbe;
        KestrelCluster.ClusterContext.PlatformProbe = () => false;
        try
        {
            await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "2" }, port: 0);
            factory.StartServer();

            using var client = HttpProbe.CreateClient(keepAlive: false);
            Assert.Equal(Environment.ProcessId, HttpProbe.ServedBy(await client.GetStringAsync(Assert.Single(factory.Addresses))));
            Assert.Empty(factory.Supervisor.WorkerProcesses);
            var warning = Assert.Single(factory.Logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Category.StartsWith("KestrelCluster", StringComparison.Ordinal));
            Assert.Contains("cannot pass sockets between processes", warning.Message, StringComparison.Ordinal);
        }
        finally
        {
            KestrelCluster.ClusterContext.PlatformProbe = probe;
        }
    }
}
