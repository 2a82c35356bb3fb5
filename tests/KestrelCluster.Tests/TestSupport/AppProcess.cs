// An app (the sample, or the failure-test app) started the way a user starts it (`dotnet HelloCluster.dll`), as a
// separate process whose output the test reads. Disposing ends the primary and the workers it started, by id,
// whatever happened.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace KestrelCluster.Tests.TestSupport;

internal sealed partial class AppProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly HashSet<int> _seenWorkers = [];

    private AppProcess(Process process)
    {
        _process = process;
    }

    public int ProcessId => _process.Id;

    public Process Process => _process;

    public string Output => string.Join('\n', _output);

    /// <summary>
    /// Waits for the primary to exit, then for the last of its output: WaitForExit(timeout) alone can return before
    /// the asynchronous output handlers have run for the final lines.
    /// </summary>
    public Task<bool> WaitForExitAsync(TimeSpan timeout) => Task.Run(() =>
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        _process.WaitForExit(); // drains redirected output
        return true;
    });

    public const string Sample = "HelloCluster";
    public const string TestApp = "KestrelCluster.TestApp";

    /// <summary>Starts the sample.</summary>
    public static AppProcess Start(IReadOnlyDictionary<string, string?> environment, params string[] arguments) =>
        Start(Sample, environment, arguments);

    public static AppProcess Start(string app, IReadOnlyDictionary<string, string?> environment, params string[] arguments) =>
        StartWrapped([], app, environment, arguments);

    /// <summary>
    /// Starts the app under <paramref name="wrapper"/> (e.g. <c>unshare -pf --mount-proc</c>, or <c>setsid</c> for a
    /// process group of its own). The signals the tests send are reset to their defaults first: a suite started with
    /// SIGINT ignored (a background job of a non-interactive shell) or SIGHUP ignored (nohup) passes that on to every
    /// child, and .NET keeps an ignored signal ignored, so the Ctrl+C and SIGHUP tests would test nothing.
    /// </summary>
    public static AppProcess StartWrapped(string[] wrapper, string app, IReadOnlyDictionary<string, string?> environment, params string[] arguments) =>
        StartCommand([.. wrapper, DotnetCli.HostPath, Path.Combine(AppContext.BaseDirectory, app + ".dll"), .. arguments],
            AppContext.BaseDirectory, environment);

    /// <summary>
    /// Starts <c>dotnet <paramref name="appPath"/></c> as typed (a relative path, or one through a symlink, stays as given)
    /// in <paramref name="workingDirectory"/>, with PWD naming that directory as a shell would.
    /// </summary>
    public static AppProcess StartAt(string appPath, string workingDirectory, IReadOnlyDictionary<string, string?> environment,
        params string[] arguments) =>
        StartCommand([DotnetCli.HostPath, appPath, .. arguments], workingDirectory,
            new Dictionary<string, string?>(environment) { ["PWD"] = workingDirectory });

    private static AppProcess StartCommand(string[] program, string workingDirectory, IReadOnlyDictionary<string, string?> environment)
    {
        string[] command = ["env", "--default-signal=INT,HUP,QUIT,TERM,TTIN,TTOU", .. program];
        var startInfo = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in command.Skip(1))
        {
            startInfo.ArgumentList.Add(argument);
        }

        // The sample reads only what the test gives it, not configuration a cluster fixture put in this process.
        foreach (var name in startInfo.Environment.Keys.Where(IsAppConfiguration).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            startInfo.Environment[name] = value;
        }

        var process = new Process { StartInfo = startInfo };
        var sample = new AppProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { sample._output.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { sample._output.Enqueue(e.Data); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sample;
    }

    /// <summary>Configuration a cluster fixture may have put in this process's environment.</summary>
    internal static bool IsAppConfiguration(string name) =>
        name.StartsWith("Kestrel__", StringComparison.OrdinalIgnoreCase) || name.StartsWith("Logging__", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Cluster__", StringComparison.OrdinalIgnoreCase) || name.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase);

    /// <summary>Environment that makes the sample listen on free ports (both endpoints HTTP/1.1 capable).</summary>
    public static Dictionary<string, string?> FreePortEnvironment(int workers) => new()
    {
        ["Cluster__Workers"] = workers.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Kestrel__Endpoints__Http__Url"] = "http://127.0.0.1:0",
        ["Kestrel__Endpoints__H2c__Url"] = "http://127.0.0.1:0",
        ["Kestrel__Endpoints__H2c__Protocols"] = "Http1AndHttp2",
        ["ASPNETCORE_ENVIRONMENT"] = "Development",
    };

    /// <summary>Waits for the primary to say where it listens and for <paramref name="workers"/> workers to be ready.</summary>
    public async Task<System.Net.IPEndPoint> WaitUntilServingAsync(int workers)
    {
        string? address = null;
        await Wait.UntilAsync(() =>
        {
            address ??= _output.Select(line => ListeningPattern().Match(line)).FirstOrDefault(m => m.Success)?.Groups[1].Value;
            return (address is not null && _output.Count(line => line.Contains("is ready", StringComparison.Ordinal)) >= workers) || _process.HasExited;
        }, TimeSpan.FromSeconds(60), $"the sample serves with {workers} workers");

        Assert.False(_process.HasExited, $"The sample exited early:\n{Output}");
        RememberWorkers();
        return HttpProbe.EndPointOf(address!);
    }

    /// <summary>The primary's live child processes (its workers); remembered so Dispose can end them.</summary>
    public IReadOnlyList<int> Workers()
    {
        RememberWorkers();
        return ProcFs.ChildrenOf(_process.Id);
    }

    /// <summary>Every process seen below the primary so far (while it ran).</summary>
    public IReadOnlyCollection<int> SeenWorkers
    {
        get
        {
            RememberWorkers();
            return [.. _seenWorkers];
        }
    }

    /// <summary>Waits until the output has a line containing <paramref name="text"/>.</summary>
    public Task WaitForOutputAsync(string text, TimeSpan timeout) =>
        Wait.UntilAsync(() => _output.Any(line => line.Contains(text, StringComparison.Ordinal)), timeout, $"the output says \"{text}\"");

    public void Dispose()
    {
        RememberWorkers();
        TestProcesses.KillIfAlive(_process.Id);
        foreach (var pid in _seenWorkers)
        {
            TestProcesses.KillIfAlive(pid);
        }

        _process.Dispose();
    }

    private void RememberWorkers()
    {
        if (!_process.HasExited)
        {
            foreach (var pid in ProcFs.DescendantsOf(_process.Id))
            {
                _seenWorkers.Add(pid);
            }
        }
    }

    [GeneratedRegex(@"Now listening on: (https?://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningPattern();
}
