// The cluster seen from outside, on real processes: MapClusterStatus, the cluster health check, and the
// kestrel-cluster tool over the admin socket, each checked against the pids that actually serve.
using System.Net.Http.Json;
using System.Text.Json;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class StatusTests : IDisposable
{
    // A TMPDIR of the test's own: the tool then finds this test's primary alone, with no pid given.
    private readonly string _tmp = Directory.CreateTempSubdirectory("kc-status-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private Dictionary<string, string?> Environment(int workers)
    {
        var environment = AppProcess.FreePortEnvironment(workers);
        environment["TMPDIR"] = _tmp;
        return environment;
    }

    [Fact]
    public async Task Status_OfTheSample_ShowsThePidsThatServe_AndAKilledWorkersRestartAndExit()
    {
        using var sample = AppProcess.Start(Environment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        using var client = HttpProbe.CreateClient(keepAlive: false);
        var baseAddress = $"http://{endpoint}";

        var status = await GetStatusAsync(client, baseAddress);
        var primary = status.GetProperty("primary");
        Assert.Equal(sample.ProcessId, primary.GetProperty("pid").GetInt32());
        Assert.Equal("cluster", primary.GetProperty("mode").GetString());
        Assert.Equal(2, primary.GetProperty("readySlots").GetInt32());
        Assert.Equal(sample.Workers().ToHashSet(), Pids(status));
        Assert.All(status.GetProperty("workers").EnumerateArray(), w => Assert.Equal("ready", w.GetProperty("state").GetString()));

        var servedBy = new HashSet<int>();
        for (var i = 0; i < 6; i++)
        {
            servedBy.Add(HttpProbe.ServedBy(await client.GetStringAsync(baseAddress)));
        }

        Assert.Equal(Pids(status), servedBy);
        Assert.Equal("Healthy", await client.GetStringAsync(baseAddress + "/healthz"));

        // kill -9 one worker: its slot's new worker shows one restart and why the old one ended.
        var victim = status.GetProperty("workers")[0];
        var (victimId, victimSlot, victimPid) = (victim.GetProperty("id").GetInt32(), victim.GetProperty("slot").GetInt32(),
            victim.GetProperty("pid").GetInt32());
        TestProcesses.Signal(victimPid, TestProcesses.SIGKILL);
        JsonElement replacement = default;
        await Wait.UntilAsync(async () =>
        {
            status = await GetStatusAsync(client, baseAddress);
            replacement = status.GetProperty("workers").EnumerateArray().FirstOrDefault(w => w.GetProperty("slot").GetInt32() == victimSlot
                && w.GetProperty("pid").GetInt32() != victimPid && w.GetProperty("state").GetString() == "ready");
            return replacement.ValueKind == JsonValueKind.Object;
        }, TimeSpan.FromSeconds(20), "the killed worker's slot serves again");

        Assert.Equal(1, replacement.GetProperty("restarts").GetInt32());
        var lastExit = replacement.GetProperty("lastExit");
        Assert.Equal(victimId, lastExit.GetProperty("workerId").GetInt32());
        Assert.Equal(victimPid, lastExit.GetProperty("pid").GetInt32());
        Assert.Equal("SIGKILL", lastExit.GetProperty("signal").GetString());
        Assert.Equal("crash", lastExit.GetProperty("reason").GetString());
        Assert.Contains(replacement.GetProperty("pid").GetInt32(), sample.Workers());

        // The tool sees the same cluster, with no pid given (the only primary in its TMPDIR).
        var json = await ClusterTool.RunAsync(_tmp, "status", "--json");
        Assert.True(json.ExitCode == 0, json.Error);
        using var fromTool = JsonDocument.Parse(json.Output);
        Assert.Equal(sample.ProcessId, fromTool.RootElement.GetProperty("primary").GetProperty("pid").GetInt32());
        Assert.Equal(Pids(status), Pids(fromTool.RootElement));

        var table = await ClusterTool.RunAsync(_tmp, "status", sample.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(table.ExitCode == 0, table.Error);
        Assert.Contains($"Primary pid {sample.ProcessId}, cluster, running", table.Output, StringComparison.Ordinal);
        Assert.Contains($"worker {victimId} SIGKILL (crash)", table.Output, StringComparison.Ordinal);
        Assert.Matches(@"; held \d+ of \d+ \(open-files limit \d+\)", table.Output); // the primary's fd budget
        foreach (var pid in Pids(status))
        {
            Assert.Contains($"  {pid}  ", table.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Tool_RestartScaleAndStop_SteerTheRunningCluster()
    {
        using var sample = AppProcess.Start(Environment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        using var client = HttpProbe.CreateClient(keepAlive: false);
        var before = Pids(await GetStatusAsync(client, $"http://{endpoint}"));
        var pid = sample.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var restart = await ClusterTool.RunAsync(_tmp, "restart", pid);
        Assert.True(restart.ExitCode == 0, restart.Error);
        Assert.Contains("Rolling restart done: 2 workers replaced, now generation 1.", restart.Output, StringComparison.Ordinal);
        var status = await GetStatusAsync(client, $"http://{endpoint}");
        Assert.Equal(1, status.GetProperty("primary").GetProperty("generation").GetInt32());
        Assert.Empty(Pids(status).Intersect(before));
        Assert.All(status.GetProperty("workers").EnumerateArray(), w =>
        {
            Assert.Equal(1, w.GetProperty("generation").GetInt32());
            Assert.Equal("rolling", w.GetProperty("lastExit").GetProperty("reason").GetString());
        });

        var scale = await ClusterTool.RunAsync(_tmp, "scale", "3");
        Assert.True(scale.ExitCode == 0, scale.Error);
        Assert.Contains("Scaled from 2 to 3 workers.", scale.Output, StringComparison.Ordinal);
        status = await GetStatusAsync(client, $"http://{endpoint}");
        Assert.Equal(3, status.GetProperty("primary").GetProperty("readySlots").GetInt32());
        Assert.Equal(3, Pids(status).Count);

        var wrong = await ClusterTool.RunAsync(_tmp, "scale", "0");
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("'0' is not a worker count", wrong.Error, StringComparison.Ordinal);
        var stranger = await ClusterTool.RunAsync(_tmp, "status", "1");
        Assert.Equal(1, stranger.ExitCode);
        Assert.Contains("Process 1 is not a running KestrelCluster primary", stranger.Error, StringComparison.Ordinal);

        var stop = await ClusterTool.RunAsync(_tmp, "stop");
        Assert.True(stop.ExitCode == 0, stop.Error);
        Assert.True(await sample.WaitForExitAsync(TimeSpan.FromSeconds(30)), "the primary stops");
        Assert.Equal(0, sample.Process.ExitCode);
        Assert.Contains($"Admin command 'stop' from pid", sample.Output, StringComparison.Ordinal);
        var gone = await ClusterTool.RunAsync(_tmp, "status");
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains("No KestrelCluster primary of this user is running", gone.Error, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task AdminSocket_IsPrivateToTheUser()
    {
        using var sample = AppProcess.Start(Environment(workers: 1));
        await sample.WaitUntilServingAsync(workers: 1);
        var directory = Assert.Single(Directory.GetDirectories(_tmp, $"kestrelcluster-{sample.ProcessId}-*"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(directory, "admin.sock")));
    }

    [Fact]
    public async Task WhatKilledPrimariesLeft_TheToolPassesOver_AndTheNextPrimaryRemoves()
    {
        // A primary killed with SIGKILL cannot remove its runtime directory; its admin.sock stays, with nobody behind it.
        string killedDirectory;
        using (var killed = AppProcess.Start(Environment(workers: 1)))
        {
            await killed.WaitUntilServingAsync(workers: 1);
            killedDirectory = Assert.Single(Directory.GetDirectories(_tmp, $"kestrelcluster-{killed.ProcessId}-*"));
            TestProcesses.Signal(killed.ProcessId, TestProcesses.SIGKILL);
            Assert.True(await killed.WaitForExitAsync(TimeSpan.FromSeconds(10)), "the primary outlived SIGKILL");
        }

        // And one as a container's primary leaves it in a shared /tmp: pid 1, which here is another process.
        var containerDirectory = Directory.CreateDirectory(Path.Combine(_tmp, "kestrelcluster-1-container")).FullName;
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream,
            System.Net.Sockets.ProtocolType.Unspecified);
        socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(containerDirectory, "admin.sock")));
        socket.Listen();
        // The fd only, as a process that dies closes it: Socket.Dispose (and its finalizer) would delete the file too.
        socket.SafeHandle.Dispose();
        GC.SuppressFinalize(socket);

        // Older than a primary between its bind and its listen could be.
        foreach (var directory in new[] { killedDirectory, containerDirectory })
        {
            File.SetLastWriteTimeUtc(Path.Combine(directory, "admin.sock"), DateTime.UtcNow.AddMinutes(-1));
        }

        var none = await ClusterTool.RunAsync(_tmp, "status");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("No KestrelCluster primary of this user is running", none.Error, StringComparison.Ordinal);

        // The next primary removes them beside its start, and says so in one line.
        using var next = AppProcess.Start(Environment(workers: 1));
        await next.WaitUntilServingAsync(workers: 1);
        await next.WaitForOutputAsync($"left in {_tmp}/: 2 runtime directories.", TimeSpan.FromSeconds(20));
        Assert.False(Directory.Exists(killedDirectory), "the killed primary's directory is still there");
        Assert.False(Directory.Exists(containerDirectory), "the container primary's directory is still there");
        Assert.Single(Directory.GetDirectories(_tmp, $"kestrelcluster-{next.ProcessId}-*"));

        var status = await ClusterTool.RunAsync(_tmp, "status", "--json");
        Assert.True(status.ExitCode == 0, status.Error);
        using var json = JsonDocument.Parse(status.Output);
        Assert.Equal(next.ProcessId, json.RootElement.GetProperty("primary").GetProperty("pid").GetInt32());
    }

    [Fact]
    public async Task HealthCheck_ASlotThatCannotStart_IsDegraded_AndWorkersGetTheirResourceAttributes()
    {
        var broken = Path.Combine(_tmp, "broken");
        var environment = Environment(workers: 2);
        environment["TestApp__FailStartupIfExists"] = broken;
        environment["Cluster__CrashLoopRestarts"] = "2";
        environment["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=test";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        using var client = HttpProbe.CreateClient(keepAlive: false);
        var baseAddress = $"http://{endpoint}";
        Assert.Equal("Healthy", await client.GetStringAsync(baseAddress + "/healthz"));

        // Each worker's OpenTelemetry resource: the app's attributes, then the instance (host and slot) and worker.
        var attributes = new HashSet<string>();
        await Wait.UntilAsync(async () =>
        {
            attributes.Add((await client.GetStringAsync(baseAddress + "/env?name=OTEL_RESOURCE_ATTRIBUTES")).Split('\n')[0]);
            return attributes.Count == 2;
        }, TimeSpan.FromSeconds(20), "both workers have answered");
        var host = Uri.EscapeDataString(System.Environment.MachineName);
        foreach (var slot in new[] { 0, 1 })
        {
            Assert.Contains(attributes, a => a.StartsWith($"deployment.environment=test,service.instance.id={host}/{slot},kestrelcluster.worker.id=",
                StringComparison.Ordinal) && a.EndsWith($",kestrelcluster.worker.slot={slot}", StringComparison.Ordinal));
        }

        // A broken deploy: the killed worker's replacements cannot start; the breaker leaves the slot empty.
        await File.WriteAllTextAsync(broken, "");
        var status = await GetStatusAsync(client, baseAddress);
        var victim = status.GetProperty("workers")[1];
        TestProcesses.Signal(victim.GetProperty("pid").GetInt32(), TestProcesses.SIGKILL);
        await Wait.UntilAsync(async () =>
        {
            using var response = await client.GetAsync(baseAddress + "/healthz");
            return await response.Content.ReadAsStringAsync() == "Degraded";
        }, TimeSpan.FromSeconds(30), "the health check says Degraded");
        await Wait.UntilAsync(async () =>
            (await GetStatusAsync(client, baseAddress)).GetProperty("primary").GetProperty("emptySlots").GetArrayLength() == 1,
            TimeSpan.FromSeconds(30), "the status shows the empty slot");
    }

    private static async Task<JsonElement> GetStatusAsync(HttpClient client, string baseAddress)
    {
        using var response = await client.GetAsync(baseAddress + "/cluster/status");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static HashSet<int> Pids(JsonElement status) =>
        [.. status.GetProperty("workers").EnumerateArray().Select(w => w.GetProperty("pid").GetInt32())];
}
