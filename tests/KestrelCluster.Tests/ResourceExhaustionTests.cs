// Resource exhaustion, provoked for real on the sample: a connection flood past the open-files limit, a worker whose fds run
// out, a worker start refused for want of fds, connections that wait for workers that cannot take them. The cluster must
// come back by itself every time, and never take the fault for a broken primary or a broken deploy.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ResourceExhaustionTests
{
    [Fact]
    public async Task ConnectionFlood_PastTheOpenFilesLimit_TheClusterServesAgainWithinTenSecondsOfItsEnd()
    {
        // ulimit -n 400 for the primary and its workers (each .NET process holds ~200 fds of its own), then 1,200 keep-alive
        // connections for 8 s: more than the primary and both workers together can hold.
        using var sample = AppProcess.StartWrapped(["prlimit", "--nofile=400:400", "--"], AppProcess.Sample,
            AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var workers = sample.Workers();
        Assert.Equal(2, workers.Count);
        Assert.Equal(20, await ServeAsync(endpoint, 20));
        var baseline = ProcFs.CountFds(sample.ProcessId);

        var summary = await WrkLoad.RunAsync(endpoint, connections: 1200, threads: 2, TimeSpan.FromSeconds(8));
        Assert.Matches(@"[1-9]\d* requests in", summary);
        var floodEnded = Stopwatch.StartNew();

        // Within 10 s: both workers still there and serving, every one of 100 new requests answered, the primary's fds back.
        await Wait.UntilAsync(async () => sample.Workers().Count == 2 && await ServeAsync(endpoint, 100) == 100
            && Math.Abs(ProcFs.CountFds(sample.ProcessId) - baseline) <= 5, TimeSpan.FromSeconds(10),
            "2 workers serve 100 of 100 new requests and the primary's fds are back within 5 of its baseline " +
            $"({baseline}); fds now {ProcFs.CountFds(sample.ProcessId)}");
        Assert.True(floodEnded.Elapsed < TimeSpan.FromSeconds(10) + HttpProbe.Timeout);
        Assert.Equal(workers.Order(), sample.Workers().Order()); // the same two: nobody exited

        // The flood did reach the limits (else this tested nothing), and nobody took it for a broken peer.
        var output = sample.Output;
        Assert.True(output.Contains("as many as its open-files limit allows", StringComparison.Ordinal)
            || output.Contains("is at its open-files limit", StringComparison.Ordinal), "The flood never reached a limit:\n" + output);
        Assert.Contains("The open-files limit is 400", output, StringComparison.Ordinal); // the startup warning
        Assert.DoesNotContain("malformed frame", output, StringComparison.Ordinal);
        Assert.DoesNotContain("The primary is gone", output, StringComparison.Ordinal);
        Assert.DoesNotContain("exited unexpectedly", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Out of memory", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_OutOfFds_RefusesWhatItCannotTake_OthersServeIt_AndItTakesConnectionsAgainOnceItHasRoom()
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var starved = sample.Workers()[0];
        var (_, hard) = SoftAndHardLimit(starved);

        // Warm: what the first requests load (assemblies, each an open fd) is loaded before its fds run short.
        Assert.Equal(40, await ServeAsync(endpoint, 40));

        // Its soft limit 40 above what it holds, less than the 64 a worker keeps free: every fd handed to it lands in its
        // reserve and is refused (once it has read its new limit: it does once a second, or at once when fds are lost), and a
        // burst of more than 40 does not even fit (MSG_CTRUNC). Every request is served, by the other worker if need be.
        await SetSoftLimitAsync(starved, ProcFs.CountFds(starved) + 40, hard);
        var burst = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint)));
        Assert.All(burst, r => Assert.StartsWith("HTTP/1.1 200", r, StringComparison.Ordinal));

        Assert.True(ProcFs.IsAlive(starved), "The worker out of fds exited:\n" + sample.Output);
        await sample.WaitForOutputAsync("is at its open-files limit", TimeSpan.FromSeconds(10));

        // Room again: it is offered connections again (after it closes some, or the primary's probe), and serves them.
        await SetSoftLimitAsync(starved, hard, hard);
        await Wait.UntilAsync(async () => HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)) == starved,
            TimeSpan.FromSeconds(20), $"worker pid {starved} serves again");

        var output = sample.Output;
        Assert.DoesNotContain("malformed frame", output, StringComparison.Ordinal);
        Assert.DoesNotContain("The primary is gone", output, StringComparison.Ordinal);
        Assert.DoesNotContain("exited unexpectedly", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WorkerStart_RefusedForWantOfFds_IsRetriedUntilItSucceeds_AndIsNoCrashLoop()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Cluster__CrashLoopRestarts"] = "2"; // were the refused starts counted as crashes, the breaker would trip
        using var sample = AppProcess.Start(environment);
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var primary = sample.ProcessId;
        var (_, hard) = SoftAndHardLimit(primary);
        var victim = sample.Workers()[0];

        // The primary's soft limit 4 above what it holds: with the dead worker's channel and pipes freed (3 fds), 7 are free,
        // and a start needs 8 (three pipes and the exec-error pipe): it is refused with EMFILE, while the runtime keeps the few
        // it needs (below that, .NET fails fast with "Out of memory.", which the primary's fd budget is there to avoid).
        await SetSoftLimitAsync(primary, ProcFs.CountFds(primary) + 4, hard);
        try
        {
            TestProcesses.Signal(victim, TestProcesses.SIGKILL);
            await sample.WaitForOutputAsync("could not be started: Too many open files", TimeSpan.FromSeconds(15));

            // Refused again and again while the limit holds (100 ms, 200, 400… apart), and the status says why the slot is empty.
            await Wait.UntilAsync(async () => EmptySlot(await StatusAsync(endpoint)) is { } slot
                && slot.GetProperty("failedStarts").GetInt32() >= 3
                && slot.GetProperty("startError").GetString()!.Contains("Too many open files", StringComparison.Ordinal),
                TimeSpan.FromSeconds(15), "the status shows slot 0 empty after 3 refused starts");
        }
        finally
        {
            await SetSoftLimitAsync(primary, hard, hard);
        }

        await sample.WaitForOutputAsync("started in slot 0 after", TimeSpan.FromSeconds(15));
        await Wait.UntilAsync(async () => (await StatusAsync(endpoint)).GetProperty("primary").GetProperty("readySlots").GetInt32() == 2,
            TimeSpan.FromSeconds(30), "both slots have a ready worker again");
        Assert.Equal(2, sample.Workers().Count);
        Assert.Equal(0, (await StatusAsync(endpoint)).GetProperty("primary").GetProperty("emptySlots").GetArrayLength());
        Assert.DoesNotContain("crash loop", sample.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("No worker has ever started", sample.Output, StringComparison.Ordinal);
        Assert.True(ProcFs.IsAlive(primary));
    }

    private static JsonElement? EmptySlot(JsonElement status) =>
        status.GetProperty("primary").GetProperty("emptySlots").EnumerateArray().Cast<JsonElement?>().FirstOrDefault();

    [Fact]
    public async Task WaitingConnections_ClientGoneOrWaitedTooLong_AreClosed_TheRestServedOnceWorkersCanTakeThem()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Cluster__MaxConnectionWait"] = "00:00:03";
        environment["Cluster__MaxHandoffsInFlight"] = "1";
        using var sample = AppProcess.Start(environment);
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var workers = sample.Workers();
        var baseline = ProcFs.CountFds(sample.ProcessId);

        // Stopped workers read nothing: each holds its one handoff in flight, and every other connection waits in the primary.
        foreach (var worker in workers)
        {
            await TestProcesses.StopAsync(worker);
        }

        try
        {
            // Clients that give up: closed by the primary at the next sweep, long before the wait limit.
            var quitters = new List<Socket>();
            for (var i = 0; i < 20; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(endpoint);
                quitters.Add(socket);
            }

            await Wait.UntilAsync(() => ProcFs.CountFds(sample.ProcessId) >= baseline + 20, TimeSpan.FromSeconds(10),
                "the primary holds the 20 connections");
            quitters.ForEach(s => s.Dispose());
            await Wait.UntilAsync(() => ProcFs.CountFds(sample.ProcessId) <= baseline + 2, TimeSpan.FromSeconds(2.5),
                "the primary closes the connections whose client has gone, before their wait limit");

            // Clients that wait: told after MaxConnectionWait, not left waiting for good. An HTTP/1.1 request gets the primary's
            // 503 with Retry-After; what the primary cannot read as HTTP/1.x (TLS, HTTP/2) sees the connection end.
            var waited = Stopwatch.StartNew();
            var waiting = Enumerable.Range(0, 5).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint)).ToArray();
            using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await silent.ConnectAsync(endpoint);
            await silent.SendAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
            var answers = await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.All(answers, a => Assert.StartsWith("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n", a, StringComparison.Ordinal));
            Assert.Equal("", await HttpProbe.ReadToEndAsync(silent).WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(15));
            await sample.WaitForOutputAsync("waited longer than 3 s", TimeSpan.FromSeconds(5));
            Assert.Contains("whose client had gone", sample.Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var worker in workers)
            {
                TestProcesses.Signal(worker, TestProcesses.SIGCONT);
            }
        }

        // The workers back: everything new is served, and none was taken for dead.
        Assert.Equal(20, await ServeAsync(endpoint, 20));
        Assert.Equal(workers.Order(), sample.Workers().Order());
    }

    /// <summary>Sends <paramref name="count"/> requests, each on a new connection; returns how many were answered 200.</summary>
    private static async Task<int> ServeAsync(IPEndPoint endpoint, int count)
    {
        var served = 0;
        for (var i = 0; i < count; i++)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                if ((await HttpProbe.NewConnectionRequestAsync(endpoint, cancellationToken: timeout.Token)).StartsWith("HTTP/1.1 200",
                    StringComparison.Ordinal))
                {
                    served++;
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
            {
            }
        }

        return served;
    }

    private static async Task<JsonElement> StatusAsync(IPEndPoint endpoint)
    {
        using var client = HttpProbe.CreateClient(keepAlive: false);
        return await client.GetFromJsonAsync<JsonElement>($"http://{endpoint}/cluster/status");
    }

    private static (long Soft, long Hard) SoftAndHardLimit(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Sets a process's open-files limit from outside (prlimit), as an operator or a container runtime could.</summary>
    private static async Task SetSoftLimitAsync(int pid, long soft, long hard)
    {
        var (exitCode, output, error) = await DotnetCli.RunProgramAsync("prlimit", null, new Dictionary<string, string>(),
            TimeSpan.FromSeconds(10), $"--pid={pid}", $"--nofile={soft}:{hard}");
        Assert.True(exitCode == 0, $"prlimit failed: {output}{error}");
        Assert.Equal(soft, SoftAndHardLimit(pid).Soft);
    }
}
