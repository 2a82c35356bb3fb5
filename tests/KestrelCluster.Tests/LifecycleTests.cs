// The sample started as a user starts it (`dotnet HelloCluster.dll`), then stopped or killed the ways a
// process dies in production.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class LifecycleTests
{
    [Fact]
    public async Task Sample_StartedAsDotnetDll_ServesFromItsWorkers()
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var workers = sample.Workers();
        Assert.Equal(2, workers.Count);

        var servedBy = new HashSet<int>();
        for (var i = 0; i < 10; i++)
        {
            servedBy.Add(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)));
        }

        Assert.Equal(workers.ToHashSet(), servedBy);
        Assert.Contains("[worker ", sample.Output, StringComparison.Ordinal); // worker log lines say who wrote them

        // The pid to signal is the primary's, said once; each worker says once that it serves, without the host's banner.
        Assert.Contains($"Primary pid {sample.ProcessId}. Signals: kill -HUP {sample.ProcessId} restarts the workers", sample.Output,
            StringComparison.Ordinal);
        await Wait.UntilAsync(() => workers.All(pid => sample.Output.Contains($"pid {pid}) is serving http://127.0.0.1:", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), "each worker's serving line is written");
        var lines = sample.Output.Split('\n');
        Assert.DoesNotContain(lines, l => l.StartsWith("[worker ", StringComparison.Ordinal)
            && l.Contains("Microsoft.Hosting.Lifetime", StringComparison.Ordinal));
        Assert.Equal(1, lines.Count(l => l.Contains("Application started. Press Ctrl+C to shut down.", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Primary_KilledWithSigkill_NoWorkerLeftWithinTwoSeconds()
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        await sample.WaitUntilServingAsync(workers: 2);
        var workers = sample.Workers();
        Assert.Equal(2, workers.Count);

        TestProcesses.Signal(sample.ProcessId, TestProcesses.SIGKILL);

        await Wait.UntilAsync(() => !workers.Any(ProcFs.IsAlive), TimeSpan.FromSeconds(2), "every worker has exited");
    }

    [Theory]
    [InlineData(TestProcesses.SIGTERM)]
    [InlineData(TestProcesses.SIGINT)]
    public async Task Primary_StopSignalDuringASlowRequest_RequestCompletesAndPrimaryExitsZero(int signal)
    {
        using var sample = AppProcess.Start(AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await sample.WaitUntilServingAsync(workers: 2);
        var workers = sample.Workers();

        using var client = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await client.ConnectAsync(endpoint);
        await client.SendAsync("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        var clientPort = ((System.Net.IPEndPoint)client.LocalEndPoint!).Port;

        // In flight: a worker owns the server side of the connection, and its app is running the request. Bytes read
        // from the socket are not enough: a request Kestrel has not parsed yet is one a graceful stop may close
        // unanswered (plain Kestrel does the same), so the test waits for the endpoint's own log line.
        await Wait.UntilAsync(() => ProcFs.EstablishedTcpSocket(endpoint.Port, clientPort) is { } socket
                && workers.Any(w => ProcFs.SocketInodes(w).Contains(socket.Inode)),
            TimeSpan.FromSeconds(10), "a worker owns the slow request's connection");
        await sample.WaitForOutputAsync("Slow request: sleeping 3000 ms.", TimeSpan.FromSeconds(10));

        TestProcesses.Signal(sample.ProcessId, signal);

        var response = await HttpProbe.ReadToEndAsync(client).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
        Assert.Contains("Slept 3000 ms", response, StringComparison.Ordinal);

        Assert.True(await sample.WaitForExitAsync(TimeSpan.FromSeconds(20)), "the primary exits");
        Assert.Equal(0, sample.Process.ExitCode);
        Assert.DoesNotContain(workers, ProcFs.IsAlive);
    }
}
