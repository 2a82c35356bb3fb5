// When the primary is PID 1 (in a container), orphaned processes are re-parented to it and their zombies are
// its to reap; nobody else will. Zombie children that are not workers and that nothing reaped since the last
// look (so not ones .NET's Process class is about to reap) are reaped here.
using System.Globalization;
using KestrelCluster.Interop;

namespace KestrelCluster.Primary;

internal sealed class OrphanReaper : IDisposable
{
    private static readonly TimeSpan s_period = TimeSpan.FromSeconds(1);

    private readonly Func<IEnumerable<int>> _workerProcessIds;
    private readonly Timer _timer;
    private HashSet<int> _seenLastTime = [];

    public OrphanReaper(Func<IEnumerable<int>> workerProcessIds)
    {
        _workerProcessIds = workerProcessIds;
        _timer = new Timer(_ => Reap(), null, s_period, s_period);
    }

    public void Dispose() => _timer.Dispose();

    private void Reap()
    {
        var workers = _workerProcessIds().ToHashSet();
        var zombies = new HashSet<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && !workers.Contains(pid) && IsZombieChild(pid))
            {
                zombies.Add(pid);
            }
        }

        foreach (var pid in zombies.Where(_seenLastTime.Contains))
        {
            Libc.TryReap(pid);
        }

        _seenLastTime = zombies;
    }

    private static bool IsZombieChild(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] == "Z" && fields[1] == "1";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // gone already
        }
    }
}
