// The primary's accept path on several threads (Cluster:AcceptThreads): every thread runs, connections spread over the
// workers as with one thread, and a worker that dies with connections queued to it loses none of them.
using System.Net.Http.Json;
using System.Text.Json;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed class AcceptThreadsTests
{
    private const int AcceptThreads = 3;

    [Fact]
    public async Task AcceptThreads_Three_EachEndpointHasThreeAcceptThreads_AndNewConnectionsSpreadOverBothWorkers()
    {
        using var app = AppProcess.Start(AppProcess.TestApp, Environment());
        var endpoint = await app.WaitUntilServingAsync(2);
        var workers = app.Workers();

        // Two endpoints (Http and H2c), three threads each, named "KC accept <n> <endpoint>" (the kernel keeps 15 bytes).
        Assert.Equal(2 * AcceptThreads, AcceptThreadNames(app.ProcessId).Count);

        var responses = await RequestsAsync(endpoint, total: 300, concurrency: 12);

        Assert.All(responses, r => Assert.StartsWith("HTTP/1.1 200", r, StringComparison.Ordinal));
        var byWorker = responses.GroupBy(HttpProbe.ServedBy).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(workers.Order(), byWorker.Keys.Order());
        Assert.All(byWorker.Values, count => Assert.InRange(count, 90, 210)); // round-robin: about half each
    }

    [Fact]
    public async Task AcceptThreads_Three_WorkerKilledWhileConnectionsQueuedToIt_EveryConnectionIsServedByTheOther()
    {
        using var app = AppProcess.Start(AppProcess.TestApp, Environment());
        var endpoint = await app.WaitUntilServingAsync(2);
        var victim = app.Workers()[0];

        // A stopped worker reads nothing: the connections routed to it wait in its socket, unacknowledged.
        await TestProcesses.StopAsync(victim);
        Task<string>[] requests;
        try
        {
            requests = [.. Enumerable.Range(0, 40).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint))];
            await Wait.UntilAsync(() => requests.Count(r => r.IsCompleted) >= 15, TimeSpan.FromSeconds(30),
                "the other worker answers its share (the rest wait for the stopped one)");
            Assert.True(requests.Count(r => r.IsCompleted) < 40, "some connections were routed to the stopped worker");
        }
        finally
        {
            TestProcesses.Signal(victim, TestProcesses.SIGKILL);
        }

        var responses = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(responses, r => Assert.StartsWith("HTTP/1.1 200", r, StringComparison.Ordinal));
        Assert.DoesNotContain(responses, r => HttpProbe.ServedBy(r) == victim);
        using var client = HttpProbe.CreateClient();
        var status = await client.GetFromJsonAsync<JsonElement>($"http://{endpoint}/cluster/status");
        Assert.True(status.GetProperty("primary").GetProperty("redispatchedConnections").GetInt64() > 0, status.ToString());
    }

    private static Dictionary<string, string?> Environment() => new(AppProcess.FreePortEnvironment(2))
    {
        ["Cluster__AcceptThreads"] = AcceptThreads.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static List<string> AcceptThreadNames(int pid) =>
        [.. Directory.EnumerateDirectories($"/proc/{pid}/task")
            .Select(task => File.ReadAllText(Path.Combine(task, "comm")).Trim())
            .Where(name => name.StartsWith("KC accept ", StringComparison.Ordinal))];

    private static async Task<List<string>> RequestsAsync(System.Net.IPEndPoint endpoint, int total, int concurrency)
    {
        var responses = new System.Collections.Concurrent.ConcurrentBag<string>();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= total)
            {
                responses.Add(await HttpProbe.NewConnectionRequestAsync(endpoint));
            }
        })).WaitAsync(TimeSpan.FromMinutes(2));
        return [.. responses];
    }
}
