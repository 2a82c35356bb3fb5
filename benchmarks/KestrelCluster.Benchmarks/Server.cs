// One server setup under test, started on a free port and stopped after each measurement.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Benchmarks;

/// <summary>A setup: how to start it and how many "is ready" lines mean it is serving. Opt-in setups run only when named.</summary>
internal sealed record Setup(string Name, string Description, Func<int, (string FileName, string[] Arguments)> Command, int ReadyLines)
{
    public bool OptIn { get; init; }

    /// <summary>Environment variables set for the server (and so for its workers).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>When set, the CPUs (taskset list, say "1") the server and every process it starts may run on.</summary>
    public string? Cpus { get; init; }

    /// <summary>http, or https for a TLS endpoint.</summary>
    public string Scheme { get; init; } = "http";

    /// <summary>The server closes every connection unanswered (BenchApp --sink): it serves once a connection is closed by it.</summary>
    public bool Sink { get; init; }
}

internal sealed class Server : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private bool _sink;

    private Server(Process process, int port, string scheme)
    {
        _process = process;
        Port = port;
        Scheme = scheme;
    }

    public string Scheme { get; }

    public int Port { get; }

    public int ProcessId => _process.Id;

    public string Url => $"{Scheme}://127.0.0.1:{Port}/";

    public static async Task<Server> StartAsync(Setup setup)
    {
        var port = FreePort();
        var (fileName, arguments) = setup.Command(port);
        if (setup.Cpus is { } cpus)
        {
            (fileName, arguments) = ("taskset", ["-c", cpus, fileName, .. arguments]); // taskset execs: the pid stays the server's
        }

        var startInfo = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // Every setup reads only its command line: no endpoints, cluster options or logging from the caller's environment.
        foreach (var name in startInfo.Environment.Keys.Where(IsAppConfiguration).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        foreach (var (name, value) in setup.Environment)
        {
            startInfo.Environment[name] = value;
        }

        var server = new Server(new Process { StartInfo = startInfo }, port, setup.Scheme) { _sink = setup.Sink };
        server._process.OutputDataReceived += (_, e) => { if (e.Data is not null) { server._output.Enqueue(e.Data); } };
        server._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { server._output.Enqueue(e.Data); } };
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        try
        {
            await server.WaitUntilServingAsync(setup.ReadyLines);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    internal static bool IsAppConfiguration(string name) =>
        name.StartsWith("Kestrel__", StringComparison.OrdinalIgnoreCase) || name.StartsWith("Cluster__", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Logging__", StringComparison.OrdinalIgnoreCase) || name.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("DOTNET_URLS", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether the server has written a line containing <paramref name="text"/>.</summary>
    public bool HasSaid(string text) => _output.Any(l => l.Contains(text, StringComparison.Ordinal));

    /// <summary>Sends <paramref name="signal"/> to the server's main process (the primary).</summary>
    public void Signal(int signal) => Kill(_process.Id, signal);

    /// <summary>CPU seconds (user + system) the server's main process has used so far.</summary>
    public double CpuSeconds() => CpuSecondsOf(ProcessId);

    /// <summary>CPU seconds the server's processes (main process and workers) have used so far: the cost of serving.</summary>
    public double TreeCpuSeconds()
    {
        var total = 0.0;
        var pending = new Stack<int>([ProcessId]);
        while (pending.TryPop(out var pid))
        {
            try
            {
                total += CpuSecondsOf(pid);
            }
            catch (IOException)
            {
                continue; // exited meanwhile
            }

            foreach (var child in ChildrenOf(pid))
            {
                pending.Push(child);
            }
        }

        return total;
    }

    /// <summary>
    /// CPU seconds used so far by each kind of thread of the server's processes: (process role, thread name with its
    /// digits as '#'), the role being "primary" for the main process of a cluster and "worker" for its children.
    /// </summary>
    public Dictionary<(string Role, string Thread), double> CpuSecondsByThread()
    {
        var result = new Dictionary<(string, string), double>();
        var workers = ChildrenOf(ProcessId);
        foreach (var pid in workers.Prepend(ProcessId))
        {
            var role = pid == ProcessId ? (workers.Count > 0 ? "primary" : "process") : "worker";
            IEnumerable<string> tasks;
            try
            {
                tasks = Directory.EnumerateDirectories($"/proc/{pid}/task").ToList();
            }
            catch (IOException)
            {
                continue;
            }

            foreach (var task in tasks)
            {
                try
                {
                    var name = string.Concat(File.ReadAllText(Path.Combine(task, "comm")).Trim().Select(c => char.IsAsciiDigit(c) ? '#' : c));
                    result[(role, name)] = result.GetValueOrDefault((role, name)) + CpuSecondsIn(Path.Combine(task, "stat"));
                }
                catch (IOException)
                {
                    // the thread ended meanwhile
                }
            }
        }

        return result;
    }

    private static double CpuSecondsOf(int pid) => CpuSecondsIn($"/proc/{pid}/stat");

    /// <summary>utime + stime of a process's or thread's stat file, in seconds (CLK_TCK = 100).</summary>
    private static double CpuSecondsIn(string statPath)
    {
        var fields = StatFields(statPath);
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>The fields of a /proc stat file after "pid (comm) ": comm may hold spaces and parentheses.</summary>
    private static string[] StatFields(string statPath)
    {
        var stat = File.ReadAllText(statPath);
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    public long ResidentBytes() => StatusBytes("VmRSS:");

    /// <summary>Anonymous resident memory: what this process alone costs (mapped files are shared).</summary>
    public long PrivateResidentBytes() => StatusBytes("RssAnon:");

    /// <summary>Proportional resident memory (PSS): private pages plus this process's share of pages mapped by several.</summary>
    public long ProportionalBytes()
    {
        var line = File.ReadLines($"/proc/{ProcessId}/smaps_rollup").First(l => l.StartsWith("Pss:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private long StatusBytes(string field)
    {
        var line = File.ReadLines($"/proc/{ProcessId}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    public int OpenFds() => Directory.EnumerateFileSystemEntries($"/proc/{ProcessId}/fd").Count();

    public async ValueTask DisposeAsync()
    {
        var tree = ChildrenOf(_process.Id);
        if (!_process.HasExited)
        {
            Kill(_process.Id, 15);
            if (!await Task.Run(() => _process.WaitForExit(15_000)))
            {
                _process.Kill();
            }
        }

        foreach (var pid in tree)
        {
            Kill(pid, 9); // anything left behind (already gone, normally)
        }

        _process.Dispose();
    }

    private async Task WaitUntilServingAsync(int readyLines)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        // The setups' own certificates are self-signed; an HTTP/2-only endpoint answers HTTP/2 only (prior knowledge in clear).
        using var client = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException("The server exited:\n" + string.Join('\n', _output));
            }

            if (_output.Count(l => l.Contains("is ready", StringComparison.Ordinal)) >= readyLines && _sink)
            {
                try
                {
                    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await socket.ConnectAsync(IPAddress.Loopback, Port);
                    if (await socket.ReceiveAsync(new byte[1]) == 0)
                    {
                        return; // closed by the server: a sink serving
                    }
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
                {
                    return; // aborted by the server (Kestrel's Abort resets): a sink serving
                }
                catch (SocketException)
                {
                }
            }
            else if (_output.Count(l => l.Contains("is ready", StringComparison.Ordinal)) >= readyLines)
            {
                foreach (var version in new[] { System.Net.HttpVersion.Version11, System.Net.HttpVersion.Version20 })
                {
                    try
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Get, Url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
                        using var response = await client.SendAsync(request);
                        if (response.IsSuccessStatusCode)
                        {
                            return;
                        }
                    }
                    catch (HttpRequestException)
                    {
                    }
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("The server did not start:\n" + string.Join('\n', _output));
            }

            await Task.Delay(50);
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The direct children of <paramref name="pid"/> (a primary's workers).</summary>
    private static List<int> ChildrenOf(int pid)
    {
        var result = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var child))
            {
                try
                {
                    if (StatFields($"/proc/{child}/stat")[1] == pid.ToString(CultureInfo.InvariantCulture))
                    {
                        result.Add(child);
                    }
                }
                catch (IOException)
                {
                }
            }
        }

        return result;
    }

    private static void Kill(int pid, int signal) => _ = kill(pid, signal);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int kill(int pid, int sig);
}
