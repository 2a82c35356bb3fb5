// App-facing cluster features: messages between primary and workers, and hosted services that run once.
using KestrelCluster.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class MessagingTests(ClusterFixture cluster)
{
    private IClusterMessenger PrimaryMessenger => cluster.Factory.Services.GetRequiredService<IClusterMessenger>();

    [Fact]
    public async Task Broadcast_FromAWorker_ReachesEveryWorker()
    {
        var before = await CacheClearsAsync();

        using var client = HttpProbe.CreateClient(keepAlive: false);
        using var response = await client.PostAsync(cluster.HttpAddress + "/cache/clear", null);
        response.EnsureSuccessStatusCode();

        await Wait.UntilAsync(async () => (await CacheClearsAsync()).All(w => w.Value == before[w.Key] + 1), TimeSpan.FromSeconds(10),
            "every worker has cleared its cache once more");
    }

    [Fact]
    public async Task SendToWorker_FromThePrimary_ReachesThatWorkerOnly()
    {
        var before = await CacheClearsAsync();
        var target = cluster.Factory.Supervisor.WorkerProcesses[0];

        await PrimaryMessenger.SendToWorkerAsync(target.Id, "cache:clear"u8.ToArray());

        await Wait.UntilAsync(async () => (await CacheClearsAsync())[target.ProcessId] == before[target.ProcessId] + 1, TimeSpan.FromSeconds(10), "the target cleared its cache");
        var after = await CacheClearsAsync();
        Assert.All(after.Where(w => w.Key != target.ProcessId), w => Assert.Equal(before[w.Key], w.Value));
    }

    [Fact]
    public async Task Message_LargerThanTheLimit_IsRejectedClearlyAndNothingElseBreaks()
    {
        var before = await CacheClearsAsync();

        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await PrimaryMessenger.BroadcastAsync(new byte[PrimaryMessenger.MaxMessageSize + 1]));
        Assert.Contains($"at most {PrimaryMessenger.MaxMessageSize} bytes", error.Message, StringComparison.Ordinal);

        await PrimaryMessenger.BroadcastAsync("cache:clear"u8.ToArray()); // the largest allowed size still passes
        await PrimaryMessenger.BroadcastAsync(new byte[PrimaryMessenger.MaxMessageSize]);
        await Wait.UntilAsync(async () => (await CacheClearsAsync()).All(w => w.Value == before[w.Key] + 1), TimeSpan.FromSeconds(10), "the next broadcast still arrives");
        Assert.All(cluster.Factory.Supervisor.WorkerProcesses, w => Assert.True(w.IsReady && ProcFs.IsAlive(w.ProcessId)));
    }

    [Fact]
    public async Task SendToPrimary_AndHostedServicesThatRunOnce()
    {
        var record = Path.Combine(Path.GetTempPath(), $"kc-record-{Guid.NewGuid():N}.txt");
        try
        {
            var environment = AppProcess.FreePortEnvironment(workers: 2);
            environment["TestApp__RecordFile"] = record;
            using var app = AppProcess.Start(AppProcess.TestApp, environment);
            var endpoint = await app.WaitUntilServingAsync(workers: 2);
            var workers = app.Workers();

            var answer = await HttpProbe.NewConnectionRequestAsync(endpoint, "/tell-primary?text=hello-primary");
            var sender = HttpProbe.ServedBy(answer);
            await Wait.UntilAsync(() => File.Exists(record) && File.ReadAllText(record).Contains("hello-primary", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10), "the primary received the message");

            var lines = File.ReadAllLines(record);
            Assert.Equal([$"primary-only {app.ProcessId}"], lines.Where(l => l.StartsWith("primary-only", StringComparison.Ordinal)));
            var slotZero = Assert.Single(lines, l => l.StartsWith("slot-0-only", StringComparison.Ordinal));
            Assert.Contains(int.Parse(slotZero.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), workers);
            Assert.Matches(@"^message \d+ hello-primary$", Assert.Single(lines, l => l.StartsWith("message", StringComparison.Ordinal)));
            Assert.Contains(sender, workers);

            // Order per sender: 300 messages sent back to back are delivered, one at a time, in the order sent.
            await HttpProbe.NewConnectionRequestAsync(endpoint, "/tell-primary?text=seq&count=300");
            await Wait.UntilAsync(() => File.ReadAllLines(record).Count(l => l.Contains(" seq-", StringComparison.Ordinal)) == 300,
                TimeSpan.FromSeconds(20), "the primary received all 300 messages");
            var sequence = File.ReadAllLines(record).Where(l => l.Contains(" seq-", StringComparison.Ordinal)).Select(l => l[(l.LastIndexOf('-') + 1)..]);
            Assert.Equal(Enumerable.Range(0, 300).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), sequence);
        }
        finally
        {
            File.Delete(record);
        }
    }

    [Fact]
    public async Task SendToWorker_WithACancelledToken_ThrowsOperationCanceled()
    {
        var target = cluster.Factory.Supervisor.WorkerProcesses[0];
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await PrimaryMessenger.SendToWorkerAsync(target.Id, "cache:clear"u8.ToArray(), cancelled.Token));
    }

    /// <summary>How many times each worker (by pid) has cleared its cache, read from the sample's /cache.</summary>
    private async Task<Dictionary<int, int>> CacheClearsAsync()
    {
        var result = new Dictionary<int, int>();
        var endpoint = HttpProbe.EndPointOf(cluster.HttpAddress);
        for (var attempt = 0; attempt < 20 && result.Count < ClusterFixture.WorkerCount; attempt++)
        {
            var response = await HttpProbe.NewConnectionRequestAsync(endpoint, "/cache");
            var match = System.Text.RegularExpressions.Regex.Match(response, @"cleared (\d+) times");
            result[HttpProbe.ServedBy(response)] = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.Equal(ClusterFixture.WorkerCount, result.Count);
        return result;
    }
}
