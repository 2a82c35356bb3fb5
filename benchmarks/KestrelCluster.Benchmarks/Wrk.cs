// Runs wrk and reads its report: requests per second, latency percentiles, errors.
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace KestrelCluster.Benchmarks;

internal sealed record WrkResult(double RequestsPerSecond, long Requests, double P50Ms, double P99Ms, long Errors);

internal static partial class Wrk
{
    // cpus: when set, the CPUs (a taskset list) wrk may run on.
    public static async Task<WrkResult> RunAsync(string url, bool keepAlive, int threads, int connections, TimeSpan duration, string? cpus = null)
    {
        var startInfo = new ProcessStartInfo(cpus is null ? "wrk" : "taskset") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cpus is not null)
        {
            startInfo.ArgumentList.Add("-c");
            startInfo.ArgumentList.Add(cpus);
            startInfo.ArgumentList.Add("wrk");
        }

        foreach (var argument in new[] { $"-t{threads}", $"-c{connections}", $"-d{(int)duration.TotalSeconds}s", "--latency" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (!keepAlive)
        {
            startInfo.ArgumentList.Add("-H");
            startInfo.ArgumentList.Add("Connection: close");
        }

        startInfo.ArgumentList.Add(url);
        using var process = Process.Start(startInfo)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(duration + TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk failed: {output}{await process.StandardError.ReadToEndAsync()}");
        }

        return Parse(output);
    }

    internal static WrkResult Parse(string output)
    {
        var rps = double.Parse(RequestsPerSecond().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var requests = long.Parse(Requests().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var errors = 0L;
        var socketErrors = SocketErrors().Match(output);
        if (socketErrors.Success)
        {
            errors += Enumerable.Range(1, 4).Sum(i => long.Parse(socketErrors.Groups[i].Value, CultureInfo.InvariantCulture));
        }

        var non2xx = Non2xx().Match(output);
        if (non2xx.Success)
        {
            errors += long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture);
        }

        return new WrkResult(rps, requests, Percentile(output, "50%"), Percentile(output, "99%"), errors);
    }

    private static double Percentile(string output, string label)
    {
        var match = Regex.Match(output, $@"^\s+{Regex.Escape(label)}\s+([\d.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch { "us" => value / 1000, "s" => value * 1000, _ => value };
    }

    [GeneratedRegex(@"Requests/sec:\s+([\d.]+)")]
    private static partial Regex RequestsPerSecond();

    [GeneratedRegex(@"(\d+) requests in")]
    private static partial Regex Requests();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrors();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex Non2xx();
}
