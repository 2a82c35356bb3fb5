// One setup of the fault lab running: started inside its process group, deployed on cue, stopped. Plain Kestrel is
// supervised the way it is deployed (systemd's Restart=always with no delay: started again the moment it exits).
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace KestrelCluster.Benchmarks.Faults;

internal enum LabKind
{
    Plain,
    Cluster,
    NodeCluster,
    Pm2,
}

/// <summary>
/// A setup: what runs, how it is deployed (a signal for a cluster: SIGHUP or SIGUSR2), its colour in the pictures, and an
/// environment variable NAME=VALUE of an A/B (--variant).
/// </summary>
internal sealed record LabSetup(string Name, string Description, LabKind Kind, string Color, int DeploySignal = 1)
{
    public string? Variant { get; init; }

    /// <summary>Runs the baseline build's FaultApp (--faultapp-baseline): an A/B of a product change in one run.</summary>
    public bool Baseline { get; init; }
}

/// <summary>Where the lab's apps are; FaultAppBaseline: another build's FaultApp.dll, for setups "…-before".</summary>
internal sealed record LabPaths(string FaultApp, string? NodeScript, string? Pm2, string? FaultAppBaseline = null);

/// <summary>What a scenario asks of a setup: app settings (environment), cluster options, PM2 options.</summary>
internal sealed record LabConfiguration(IReadOnlyDictionary<string, string> Environment, IReadOnlyList<string> ClusterArguments, IReadOnlyList<string> Pm2Arguments);

internal sealed partial class LabTarget : IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly LabSetup _setup;
    private readonly LabPaths _paths;
    private readonly ProcessGroup _group;
    private readonly LabConfiguration _configuration;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _pm2Home = Path.Combine(Path.GetTempPath(), $"kc-faults-pm2-{Environment.ProcessId}");
    private readonly CancellationTokenSource _stopping = new();
    private Process? _process;
    private Task _supervisor = Task.CompletedTask;
    private int _mainPid;

    private LabTarget(LabSetup setup, LabPaths paths, ProcessGroup group, LabConfiguration configuration, int port)
    {
        (_setup, _paths, _group, _configuration, Port) = (setup, paths, group, configuration, port);
    }

    public int Port { get; }

    /// <summary>Times plain Kestrel was started again after it exited.</summary>
    public int Restarts { get; private set; }

    public string Output => string.Join('\n', _output);

    public static async Task<LabTarget> StartAsync(LabSetup setup, LabPaths paths, ProcessGroup group, LabConfiguration configuration, int port)
    {
        var target = new LabTarget(setup, paths, group, configuration, port);
        try
        {
            switch (setup.Kind)
            {
                case LabKind.Plain:
                    target._process = target.Launch("dotnet", [paths.FaultApp, "--plain", "--urls", target.Url]);
                    target._supervisor = Task.Run(target.SuperviseAsync);
                    break;
                case LabKind.Cluster:
                    target._process = target.Launch("dotnet", [setup.Baseline ? paths.FaultAppBaseline! : paths.FaultApp, "--urls", target.Url,
                        "--Cluster:Workers=2", .. configuration.ClusterArguments]);
                    break;
                case LabKind.NodeCluster:
                    target._process = target.Launch("node", [paths.NodeScript!, port.ToString(CultureInfo.InvariantCulture), "2"]);
                    break;
                case LabKind.Pm2:
                    await target.Pm2Async(["start", paths.NodeScript!, "--name", "faults", "-i", "2", .. configuration.Pm2Arguments, "--",
                        port.ToString(CultureInfo.InvariantCulture)]);
                    break;
            }

            target._mainPid = target._process?.Id ?? 0;
            await target.WaitUntilServingAsync();
            return target;
        }
        catch
        {
            await target.DisposeAsync();
            throw;
        }
    }

    private string Url => $"http://127.0.0.1:{Port}";

    /// <summary>A deploy: plain Kestrel stopped and started again; a cluster's signal; Node's SIGHUP; pm2 reload.</summary>
    public async Task DeployAsync()
    {
        switch (_setup.Kind)
        {
            case LabKind.Plain:
                _ = kill(_process!.Id, SigTerm); // the supervisor starts it again once it has exited
                break;
            case LabKind.Cluster when _setup.DeploySignal == 12:
                // The new primary says "… this process (pid N) is the primary now." once the old one has stopped accepting.
                var before = _output.Count(l => NewPrimary().IsMatch(l));
                _ = kill(_mainPid, 12);
                var deadline = DateTime.UtcNow.AddMinutes(2);
                while (_output.Count(l => NewPrimary().IsMatch(l)) == before)
                {
                    await Task.Delay(20);
                    _ = DateTime.UtcNow < deadline ? 0 : throw new TimeoutException("The primary upgrade did not finish within 2 minutes:\n" + Output);
                }

                _mainPid = int.Parse(NewPrimary().Match(_output.Last(l => NewPrimary().IsMatch(l))).Groups[1].Value, CultureInfo.InvariantCulture);
                break;
            case LabKind.Cluster or LabKind.NodeCluster:
                _ = kill(_mainPid, _setup.DeploySignal);
                break;
            case LabKind.Pm2:
                await Pm2Async(["reload", "faults"]);
                break;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_setup.Kind == LabKind.Pm2 && Directory.Exists(_pm2Home))
        {
            await Pm2Async(["kill"]);
        }
        else if (_mainPid != 0)
        {
            _ = kill(_mainPid, SigTerm);
        }

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (_group.Pids().Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        _group.KillAll();
        await _supervisor;
        _process?.Dispose();
        if (Directory.Exists(_pm2Home))
        {
            Directory.Delete(_pm2Home, recursive: true);
        }
    }

    private async Task SuperviseAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            await _process!.WaitForExitAsync(CancellationToken.None);
            if (_stopping.IsCancellationRequested)
            {
                return;
            }

            _process.Dispose();
            _process = Launch("dotnet", [_paths.FaultApp, "--plain", "--urls", Url]);
            _mainPid = _process.Id;
            Restarts++;
        }
    }

    private Process Launch(string fileName, IEnumerable<string> arguments)
    {
        var (file, wrapped) = _group.Wrap(fileName, arguments);
        var startInfo = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in wrapped)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var name in startInfo.Environment.Keys.Where(Server.IsAppConfiguration).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        foreach (var (setting, value) in _configuration.Environment)
        {
            startInfo.Environment[setting] = value;
        }

        if (_setup.Variant?.Split('=', 2) is [var variable, var variableValue])
        {
            startInfo.Environment[variable] = variableValue;
        }

        startInfo.Environment["PM2_HOME"] = _pm2Home;
        var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _group.Started(process.Id);
        return process;
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
            while (_output.Count > 2000 && _output.TryDequeue(out _))
            {
            }
        }
    }

    private async Task Pm2Async(string[] arguments)
    {
        using var process = Launch(_paths.Pm2 ?? throw new InvalidOperationException("pm2 is not installed."), [.. arguments, "--no-color"]);
        if (arguments[0] == "kill")
        {
            // PM2 waits for its apps; one whose event loop is held may keep it waiting: the group's SIGKILL ends the rest.
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15)).ContinueWith(_ => { }, TaskScheduler.Default);
            return;
        }

        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"pm2 {string.Join(' ', arguments)} failed:\n{Output}");
        }
    }

    private async Task WaitUntilServingAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        using var connection = new LabConnection(Port);
        while (true)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            if (await connection.GetAsync("/", closeAfter: true, timeout.Token))
            {
                return;
            }

            if (_process is { HasExited: true } && _setup.Kind != LabKind.Plain)
            {
                throw new InvalidOperationException($"{_setup.Name} exited:\n{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{_setup.Name} did not serve within 120 s:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    [GeneratedRegex(@"\(pid (\d+)\) is the primary now")]
    private static partial Regex NewPrimary();

    [System.Runtime.InteropServices.LibraryImport("libc")]
    private static partial int kill(int pid, int sig);
}
