// The primary owns the console: what workers write reaches it through pipes, as whole lines attributed to the
// worker, in the simple formatter (a [worker N] prefix) and in JSON (WorkerId and Slot properties), under load and
// with a worker crashing in the middle.
using System.Text.Json;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ConsoleOutputTests
{
    private const string RawLineTail = ", long enough to be torn if lines were not whole: ";

    [Fact]
    public async Task JsonConsole_UnderLoadWithACrash_EveryLineParses_AndSaysWhichWorkerWroteIt()
    {
        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["Logging__Console__FormatterName"] = "json";
        using var app = AppProcess.Start(AppProcess.TestApp, environment);
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var workers = app.Workers();
        var (crashed, crashedSlot) = await LoadWithACrashAsync(endpoint, app);

        var entries = new List<JsonElement>();
        foreach (var line in app.Output.Split('\n').Where(l => l.Length > 0))
        {
            // Every line the console shows is one JSON object: the primary's, the workers' log entries, their raw output.
            using var document = JsonDocument.Parse(line);
            entries.Add(document.RootElement.Clone());
        }

        var byWorker = entries.Where(e => e.TryGetProperty("WorkerId", out _)).ToList();
        Assert.All(byWorker, e => Assert.True(e.GetProperty("Slot").GetInt32() is 0 or 1));
        foreach (var pid in workers)
        {
            // Log entries keep their shape, with who wrote them added; raw lines become entries of their own.
            Assert.Contains(byWorker, e => e.GetProperty("Category").GetString() == "KestrelCluster.TestApp.WorkerStartup"
                && e.GetProperty("Message").GetString()!.EndsWith($"from pid {pid}.", StringComparison.Ordinal));
            Assert.Contains(byWorker, e => e.GetProperty("Category").GetString() == "KestrelCluster.WorkerOutput"
                && e.GetProperty("Message").GetString()!.StartsWith("raw line ", StringComparison.Ordinal)
                && e.GetProperty("Message").GetString()!.Contains($"from pid {pid}{RawLineTail}", StringComparison.Ordinal));
        }

        var crash = byWorker.Where(e => e.GetProperty("Message").GetString()!.Contains($"boom in pid {crashed}", StringComparison.Ordinal))
            .ToList();
        Assert.NotEmpty(crash);
        Assert.All(crash, e =>
        {
            Assert.Equal(crashedSlot, e.GetProperty("Slot").GetInt32());
            Assert.Equal("Error", e.GetProperty("LogLevel").GetString()); // the runtime's report came on stderr
        });
        // Never two workers' text in one line; whole lines, but for the one the crashing worker may have died in the middle of.
        Assert.All(byWorker.Select(e => e.GetProperty("Message").GetString()!).Where(m => m.StartsWith("raw line ", StringComparison.Ordinal)),
            m => Assert.True(IsOneWholeRawLine(m, crashed), m));
    }

    [Fact]
    public async Task SimpleConsole_UnderLoadWithACrash_EveryWorkerLineIsWholeAndPrefixed()
    {
        using var app = AppProcess.Start(AppProcess.TestApp, AppProcess.FreePortEnvironment(workers: 2));
        var endpoint = await app.WaitUntilServingAsync(workers: 2);
        var (crashed, _) = await LoadWithACrashAsync(endpoint, app);

        var lines = app.Output.Split('\n');
        var raw = lines.Where(l => l.Contains("raw line ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(raw);
        Assert.All(raw, l => Assert.True(l.StartsWith("[worker ", StringComparison.Ordinal)
            && IsOneWholeRawLine(l[(l.IndexOf("] ", StringComparison.Ordinal) + 2)..], crashed), l));
        var crash = lines.Where(l => l.Contains($"boom in pid {crashed}", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(crash);
        Assert.All(crash, l => Assert.StartsWith("[worker ", l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("[worker ", StringComparison.Ordinal) && l.Contains("   at ", StringComparison.Ordinal));
    }

    /// <summary>
    /// A raw line of one worker, whole and alone; only the crashing worker's may stop short (it died in the middle of
    /// writing it), and then it is the beginning of its own line, nothing else.
    /// </summary>
    private static bool IsOneWholeRawLine(string text, int crashed)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text, @"^raw line (\d+) from pid (\d+)");
        if (!match.Success)
        {
            return false; // the console writes its first 256 characters at once: even a torn line has its pid
        }

        var whole = $"raw line {match.Groups[1].Value} from pid {match.Groups[2].Value}{RawLineTail}{new string('x', 200)}";
        return text == whole || (match.Groups[2].Value == crashed.ToString(System.Globalization.CultureInfo.InvariantCulture)
            && whole.StartsWith(text, StringComparison.Ordinal));
    }

    /// <summary>Both workers log a lot at once while one of them crashes; returns the crashed worker's pid and slot.</summary>
    private static async Task<(int Pid, int Slot)> LoadWithACrashAsync(System.Net.IPEndPoint endpoint, AppProcess app)
    {
        var load = Enumerable.Range(0, 8).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint, "/log?lines=200")).ToList();
        var crashReply = await HttpProbe.NewConnectionRequestAsync(endpoint, "/crash");
        var crashed = HttpProbe.ServedBy(crashReply);
        load.AddRange(Enumerable.Range(0, 8).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint, "/log?lines=200")));
        await Task.WhenAll(load.Select(async l =>
        {
            try
            {
                await l;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException)
            {
                // A request that landed on the worker as it crashed.
            }
        }));

        await Wait.UntilAsync(() => app.Output.Contains($"(pid {crashed}) exited", StringComparison.Ordinal)
            || app.Output.Contains($"pid {crashed}", StringComparison.Ordinal) && app.Output.Contains("replacement", StringComparison.Ordinal),
            TimeSpan.FromSeconds(20), "the crash is handled");
        await app.WaitUntilServingAsync(workers: 3); // the replacement is ready: the crash is over, and its output is out

        // The crash report came on stderr, which the test reads apart from stdout: wait for it, and its stack trace.
        await Wait.UntilAsync(() => app.Output.Contains($"boom in pid {crashed}", StringComparison.Ordinal)
            && app.Output.Split('\n').Any(l => l.Contains("   at ", StringComparison.Ordinal)), TimeSpan.FromSeconds(20),
            "the crash report is read");
        var slot = app.Output.Split('\n').Select(l => System.Text.RegularExpressions.Regex.Match(l, $@"slot (\d+), pid {crashed}\)"))
            .First(m => m.Success).Groups[1].Value;
        return (crashed, int.Parse(slot, System.Globalization.CultureInfo.InvariantCulture));
    }
}
