// One running cluster of the sample app shared by the cluster tests: a primary in this process (through
// WebApplicationFactory, real Kestrel) and two real worker processes, serving three endpoints on free ports:
// HTTP/1.1+HTTP/2, HTTP/2 only (h2c prior knowledge) and HTTPS (HTTP/1.1 and HTTP/2 through ALPN).
namespace KestrelCluster.Tests.TestSupport;

public sealed class ClusterFixture : IAsyncLifetime
{
    public const int WorkerCount = 2;

    private readonly TestCertificate _certificate = new();
    private ClusterAppFactory? _factory;

    internal ClusterAppFactory Factory => _factory ?? throw new InvalidOperationException("The cluster is not started.");

    public string HttpAddress { get; private set; } = "";

    public string H2cAddress { get; private set; } = "";

    public string HttpsAddress { get; private set; } = "";

    internal static Dictionary<string, string?> Environment(string? certificatePath) => new()
    {
        ["Cluster__Workers"] = WorkerCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Kestrel__Endpoints__Http__Url"] = "http://127.0.0.1:0",
        ["Kestrel__Endpoints__H2c__Url"] = "http://127.0.0.1:0",
        ["Kestrel__Endpoints__Https__Url"] = certificatePath is null ? null : "https://127.0.0.1:0",
        ["Kestrel__Certificates__Default__Path"] = certificatePath,
        ["Kestrel__Certificates__Default__Password"] = certificatePath is null ? null : TestCertificate.Password,
    };

    public async Task InitializeAsync()
    {
        _factory = new ClusterAppFactory(Environment(_certificate.Path));
        await _factory.StartAsync(WorkerCount);

        HttpsAddress = _factory.Addresses.Single(a => a.StartsWith("https://", StringComparison.Ordinal));
        var plain = _factory.Addresses.Where(a => a.StartsWith("http://", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, plain.Count);

        // The HTTP/2-only endpoint answers an HTTP/1.1 request with something other than the sample's text.
        var first = await HttpProbe.NewConnectionRequestAsync(HttpProbe.EndPointOf(plain[0]));
        (HttpAddress, H2cAddress) = first.Contains("Hello from worker", StringComparison.Ordinal) ? (plain[0], plain[1]) : (plain[1], plain[0]);
    }

    public async Task DisposeAsync()
    {
        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }

        _certificate.Dispose();
    }
}
