// Cluster:WarmUpPath on real processes: each worker requests the path of itself, through its own endpoint, until its JIT
// settles, and only then is ready; the warm-up is invisible to the primary's books (handoffs, requests) and marked for
// the app by its header; the protocol is found by trying (an HTTPS-only app warms up over TLS).
using System.Text.Json;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed partial class WarmUpTests
{
    [Fact]
    public async Task WarmUp_EachWorkerServesThePathToItselfBeforeItIsReady_AndThePrimaryCountsNoneOfIt()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Cluster__WarmUpPath"] = "/greet";
        environment["Cluster__MaxWarmUpTime"] = "00:00:03"; // the test app is a Debug build: its JIT may not settle sooner
        environment["Logging__LogLevel__KestrelCluster"] = "Information";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);

        // Each worker said how much it warmed up; the logged counts are what the app saw with the warm-up header.
        await Wait.UntilAsync(() => WarmedUp().Count == 2, TimeSpan.FromSeconds(30), "both workers log their warm-up");
        var logged = WarmedUp();
        Assert.All(logged.Values, requests => Assert.True(requests >= 400, $"a worker warmed up with {requests} requests only"));

        var seen = new Dictionary<int, long>();
        for (var i = 0; i < 20 && seen.Count < 2; i++)
        {
            var answer = await HttpProbe.NewConnectionRequestAsync(endpoint, "/warm-ups");
            seen[HttpProbe.ServedBy(answer)] = long.Parse(WarmUpCount().Match(answer).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.Equal(app.Workers().ToHashSet(), seen.Keys.ToHashSet());
        // The app saw what was logged, plus the protocol probe and what the last loops had in flight when the JIT settled.
        Assert.InRange(seen.Values.Sum(), logged.Values.Sum(), logged.Values.Sum() + (2 * 5));

        // The primary handed off only this test's connections, and the workers count only its requests (for recycling).
        using var client = HttpProbe.CreateClient(keepAlive: false);
        using var status = JsonDocument.Parse(await client.GetStringAsync(new Uri($"http://{endpoint}/cluster/status")));
        var workers = status.RootElement.GetProperty("workers").EnumerateArray().ToList();
        Assert.True(workers.Sum(w => w.GetProperty("connectionsHandedOff").GetInt64()) <= seen.Count + 20 + 1,
            $"handoffs counted: {string.Join(", ", workers.Select(w => w.GetProperty("connectionsHandedOff").GetInt64()))}");
        Assert.All(workers, w => Assert.True(w.GetProperty("requests").GetInt64() < 100,
            $"worker {w.GetProperty("id")} counts {w.GetProperty("requests")} requests: the warm-up's were counted"));

        Dictionary<int, long> WarmedUp() => app.Output.Split('\n').Select(line => WarmedUpLine().Match(line)).Where(m => m.Success)
            .ToDictionary(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
                m => long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task WarmUp_OfAnHttpsOnlyApp_FindsTls_AndLogsNoneOfItsWrongGuesses()
    {
        using var certificate = new TestCertificate();
        var environment = new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "2",
            ["Cluster__WarmUpPath"] = "/greet",
            ["Cluster__MaxWarmUpTime"] = "00:00:03",
            // The endpoints of the appsettings.json beside the test app (Http, H2c), made TLS-only: one HTTP/2 only.
            ["Kestrel__Endpoints__Http__Url"] = "https://127.0.0.1:0",
            ["Kestrel__Endpoints__H2c__Url"] = "https://127.0.0.1:0",
            ["Kestrel__Endpoints__H2c__Protocols"] = "Http2",
            ["Kestrel__Certificates__Default__Path"] = certificate.Path,
            ["Kestrel__Certificates__Default__Password"] = TestCertificate.Password,
            ["Logging__LogLevel__KestrelCluster"] = "Information",
        };
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        await app.WaitUntilServingAsync(workers: 2);

        int OverTls() => app.Output.Split('\n').Count(line => line.Contains("warmed up", StringComparison.Ordinal)
            && line.Contains(" over TLS)", StringComparison.Ordinal));
        try
        {
            await Wait.UntilAsync(() => OverTls() == 2 || app.Output.Contains("could not warm up", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), "both workers log their warm-up");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(e.Message + "\n" + app.Output, e);
        }
        Assert.True(OverTls() == 2, app.Output);

        // The wrong guesses on the way (HTTP/1.1 and HTTP/2 in clear, HTTP/1.1 over TLS on the HTTP/2-only endpoint that is
        // first) are this process talking to itself: none of Kestrel's errors about them reaches the log.
        Assert.DoesNotContain("fail:", app.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WarmUp_EndsAtOnce_WhenAConnectionWaitsAndNoWorkerIsReady()
    {
        // A warm-up that would take 10 s at least (400 requests of 100 ms, 4 at a time): long enough to be cut.
        var environment = AppProcess.FreePortEnvironment(workers: 1);
        environment["Cluster__WarmUpPath"] = "/sleep?ms=100";
        environment["Cluster__MaxWarmUpTime"] = "00:01:00";
        environment["Cluster__WorkerStartTimeout"] = "00:02:00";
        environment["Logging__LogLevel__KestrelCluster"] = "Information";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 0); // listening; its worker not ready yet

        // A client arrives while the only worker warms up: the primary tells it to stop warming, and it answers.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var answer = await HttpProbe.NewConnectionRequestAsync(endpoint, "/", cancellationToken: timeout.Token);
        Assert.Contains("200 OK", answer, StringComparison.Ordinal);
        await Wait.UntilAsync(() => app.Output.Contains("Worker 1 ended its warm-up after", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the worker logs that its warm-up ended early");
        Assert.Contains("Connections are waiting and no worker is ready: worker(s) 1 end their warm-up now and serve.", app.Output,
            StringComparison.Ordinal);
        Assert.DoesNotContain("Worker 1 warmed up:", app.Output, StringComparison.Ordinal); // the full warm-up never ran to its end
        Assert.Contains("Worker 1 is ready", app.Output, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"Worker (\d+) warmed up: (\d+) requests to /greet \(HTTP/1\.1\)")]
    private static partial Regex WarmedUpLine();

    [GeneratedRegex(@"(\d+) warm-up requests")]
    private static partial Regex WarmUpCount();
}
