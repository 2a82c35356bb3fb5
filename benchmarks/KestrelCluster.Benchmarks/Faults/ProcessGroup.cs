// The processes of one setup in one scenario, and the memory limit they share: a cgroup of their own (v2 memory.max,
// or v1 memory.limit_in_bytes — both the kernel's own limit, as a container has), else a watchdog that SIGKILLs the
// largest process of the setup when the setup's resident memory reaches the limit. Either way the lab ends exactly the
// processes it started: those in the cgroup, or (without one) its own descendants — the lab is a child subreaper, so a
// daemon (PM2's) that detaches stays its descendant.
using System.Globalization;
using System.Runtime.InteropServices;

namespace KestrelCluster.Benchmarks.Faults;

internal sealed partial class ProcessGroup : IDisposable
{
    private readonly string? _cgroup;
    private readonly long? _limit;
    private readonly Timer? _watchdog;
    private readonly HashSet<int> _started = [];
    private int _watchdogKills;

    private ProcessGroup(string? cgroup, long? limit, string kind)
    {
        _cgroup = cgroup;
        _limit = limit;
        Kind = kind;
        if (cgroup is null && limit is not null)
        {
            _watchdog = new Timer(_ => Watch(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(50));
        }
    }

    /// <summary>How the limit is enforced, for the results.</summary>
    public string Kind { get; }

    /// <summary>Processes the kernel (or the watchdog) killed at the limit.</summary>
    public int LimitKills => _cgroup is null ? _watchdogKills : CgroupOomKills();

    public static ProcessGroup Create(string name, long? memoryLimit)
    {
        _ = prctl(36, 1, 0, 0, 0); // PR_SET_CHILD_SUBREAPER: detached daemons stay descendants of the lab
        var unique = $"kc-faults-{Environment.ProcessId}-{name}";
        try
        {
            if (File.Exists("/sys/fs/cgroup/cgroup.controllers")
                && File.ReadAllText("/sys/fs/cgroup/cgroup.controllers").Split(' ', '\n').Contains("memory"))
            {
                var directory = Directory.CreateDirectory(Path.Combine("/sys/fs/cgroup", unique)).FullName;
                if (memoryLimit is { } limit)
                {
                    File.WriteAllText(Path.Combine(directory, "memory.max"), limit.ToString(CultureInfo.InvariantCulture));
                    File.WriteAllText(Path.Combine(directory, "memory.swap.max"), "0");
                }

                return new ProcessGroup(directory, memoryLimit, "cgroup v2 `memory.max`");
            }

            var memory = File.ReadLines("/proc/self/cgroup").Select(l => l.Split(':', 3)).FirstOrDefault(f => f.Length == 3 && f[1].Split(',').Contains("memory"));
            if (memory is not null && Directory.Exists("/sys/fs/cgroup/memory"))
            {
                var directory = Directory.CreateDirectory(Path.Combine("/sys/fs/cgroup/memory", memory[2].TrimStart('/'), unique)).FullName;
                if (memoryLimit is { } limit)
                {
                    File.WriteAllText(Path.Combine(directory, "memory.limit_in_bytes"), limit.ToString(CultureInfo.InvariantCulture));
                    TryWrite(Path.Combine(directory, "memory.memsw.limit_in_bytes"), limit.ToString(CultureInfo.InvariantCulture));
                }

                return new ProcessGroup(directory, memoryLimit, "cgroup v1 `memory.limit_in_bytes`");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // not writable here: the watchdog
        }

        return new ProcessGroup(null, memoryLimit, "a watchdog (no writable memory cgroup): SIGKILL of the largest process at the limit, checked every 50 ms");
    }

    /// <summary>The command that runs <paramref name="fileName"/> inside the group (it joins the cgroup, then execs).</summary>
    public (string FileName, string[] Arguments) Wrap(string fileName, IEnumerable<string> arguments) => _cgroup is null
        ? (fileName, [.. arguments])
        : ("/bin/sh", ["-c", $"echo $$ > '{_cgroup}/cgroup.procs' && exec \"$@\"", "sh", fileName, .. arguments]);

    /// <summary>A process the lab started (a Process object reaps it): never reaped by <see cref="Dispose"/>.</summary>
    public void Started(int pid) => _started.Add(pid);

    /// <summary>The processes of the group now.</summary>
    public IReadOnlyList<int> Pids() => _cgroup is null
        ? Descendants(Environment.ProcessId)
        : [.. File.ReadAllLines(Path.Combine(_cgroup, "cgroup.procs")).Where(l => l.Length > 0).Select(l => int.Parse(l, CultureInfo.InvariantCulture))];

    /// <summary>The group's resident memory (its processes' RSS).</summary>
    public long ResidentBytes() => Pids().Sum(ResidentBytesOf);

    /// <summary>SIGKILLs every process of the group until none is left (at most 10 s).</summary>
    public void KillAll()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Pids() is { Count: > 0 } pids && DateTime.UtcNow < deadline)
        {
            foreach (var pid in pids)
            {
                _ = kill(pid, 9);
            }

            Thread.Sleep(20);
        }
    }

    public void Dispose()
    {
        _watchdog?.Dispose();
        KillAll();
        ReapOrphans();
        if (_cgroup is not null)
        {
            for (var attempt = 0; attempt < 50; attempt++)
            {
                try
                {
                    Directory.Delete(_cgroup);
                    return;
                }
                catch (IOException)
                {
                    Thread.Sleep(20); // the killed processes are still being reaped
                }
            }
        }
    }

    /// <summary>
    /// Reaps the lab's zombie children that no Process object waits for: daemons (PM2's) reparented to the lab, a child
    /// subreaper. The processes the lab started itself are reaped by their Process objects, and left alone here.
    /// </summary>
    private void ReapOrphans()
    {
        foreach (var pid in Descendants(Environment.ProcessId))
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[0] == "Z" && fields[1] == Environment.ProcessId.ToString(CultureInfo.InvariantCulture) && !_started.Contains(pid))
                {
                    _ = waitpid(pid, 0, 1); // WNOHANG
                }
            }
            catch (IOException)
            {
            }
        }
    }

    private void Watch()
    {
        var pids = Pids();
        var sizes = pids.Select(p => (Pid: p, Bytes: ResidentBytesOf(p))).ToList();
        if (_limit is { } limit && sizes.Sum(s => s.Bytes) >= limit && sizes.Count > 0)
        {
            _ = kill(sizes.MaxBy(s => s.Bytes).Pid, 9);
            _watchdogKills++;
        }
    }

    private int CgroupOomKills()
    {
        foreach (var file in new[] { "memory.events", "memory.oom_control" })
        {
            var path = Path.Combine(_cgroup!, file);
            if (File.Exists(path) && File.ReadLines(path).Select(l => l.Split(' ')).FirstOrDefault(f => f[0] == "oom_kill") is { } line)
            {
                return int.Parse(line[1], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private static long ResidentBytesOf(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static List<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid))
            {
                try
                {
                    var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                    parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
                }
                catch (IOException)
                {
                }
            }
        }

        var result = new List<int>();
        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var parent))
        {
            foreach (var (pid, ppid) in parents)
            {
                if (ppid == parent)
                {
                    result.Add(pid);
                    pending.Push(pid);
                }
            }
        }

        return result;
    }

    private static void TryWrite(string path, string value)
    {
        try
        {
            File.WriteAllText(path, value);
        }
        catch (IOException)
        {
            // memsw is there only with swap accounting
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [LibraryImport("libc")]
    private static partial int waitpid(int pid, nint status, int options);

    [LibraryImport("libc")]
    private static partial int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
}
