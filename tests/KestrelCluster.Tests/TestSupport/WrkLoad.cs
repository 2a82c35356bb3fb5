// wrk as a test's load generator: HTTP/1.1 keep-alive connections that send the next request the moment a response is in
// and never retry, so a connection a server closes under a request shows as a "Socket errors" line. Started by id,
// stopped with SIGINT (wrk then prints its summary), killed by id whatever happens.
using System.Diagnostics;
using System.Net;

namespace KestrelCluster.Tests.TestSupport;

internal sealed class WrkLoad : IDisposable
{
    private readonly Process _process;

    private WrkLoad(Process process) => _process = process;

    public static WrkLoad Start(IPEndPoint endpoint, int connections)
    {
        Assert.True(File.Exists("/usr/bin/wrk"), "wrk is missing: tests/install-test-tools.sh installs it");
        var startInfo = new ProcessStartInfo("/usr/bin/wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "-t1", $"-c{connections}", "-d120s", "--timeout", "20s", $"http://{endpoint}/" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        return new WrkLoad(Process.Start(startInfo)!);
    }

    /// <summary>
    /// Runs wrk for <paramref name="duration"/> with <paramref name="connections"/> keep-alive connections over
    /// <paramref name="threads"/> threads, and returns its summary; killed by id if it overruns.
    /// </summary>
    public static async Task<string> RunAsync(IPEndPoint endpoint, int connections, int threads, TimeSpan duration)
    {
        Assert.True(File.Exists("/usr/bin/wrk"), "wrk is missing: tests/install-test-tools.sh installs it");
        var startInfo = new ProcessStartInfo("/usr/bin/wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { $"-t{threads}", $"-c{connections}", $"-d{(int)duration.TotalSeconds}s", "--timeout", "5s",
            $"http://{endpoint}/" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var wrk = new WrkLoad(Process.Start(startInfo)!);
        var output = wrk._process.StandardOutput.ReadToEndAsync();
        var error = wrk._process.StandardError.ReadToEndAsync();
        await wrk._process.WaitForExitAsync().WaitAsync(duration + TimeSpan.FromSeconds(30));
        return await output + await error;
    }

    /// <summary>Stops it and returns its summary (requests, and the error lines wrk prints only when there were errors).</summary>
    public async Task<string> StopAsync()
    {
        TestProcesses.Signal(_process.Id, TestProcesses.SIGINT);
        var output = _process.StandardOutput.ReadToEndAsync();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return await output + await _process.StandardError.ReadToEndAsync();
    }

    public void Dispose()
    {
        TestProcesses.KillIfAlive(_process.Id);
        _process.Dispose();
    }
}
