// What Linux's /proc says about processes and sockets: children, open fds, listening TCP sockets.
using System.Globalization;

namespace KestrelCluster.Tests.TestSupport;

internal static class ProcFs
{
    public static bool IsAlive(int pid)
    {
        // A zombie still has a /proc entry; it is dead for our purposes.
        var stat = ReadStat(pid);
        return stat is not null && stat.Value.State != 'Z' && stat.Value.State != 'X';
    }

    /// <summary>Whether every thread of <paramref name="pid"/> is stopped (SIGSTOP is delivered asynchronously, thread by thread).</summary>
    public static bool IsStopped(int pid)
    {
        try
        {
            return Directory.EnumerateDirectories($"/proc/{pid}/task")
                .All(task => ReadStat(int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture), $"/proc/{pid}/task/{Path.GetFileName(task)}/stat")
                    is { State: 'T' or 't' });
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
    }

    public static IReadOnlyList<int> ChildrenOf(int pid) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var p) ? p : -1)
            .Where(p => p > 0 && ReadStat(p) is { } s && s.ParentId == pid && s.State != 'Z')];

    /// <summary>Children, grandchildren, … of <paramref name="pid"/>.</summary>
    public static IReadOnlyList<int> DescendantsOf(int pid)
    {
        var result = new List<int>();
        var next = new Queue<int>([pid]);
        while (next.TryDequeue(out var parent))
        {
            foreach (var child in ChildrenOf(parent))
            {
                result.Add(child);
                next.Enqueue(child);
            }
        }

        return result;
    }

    /// <summary>Zombie children of <paramref name="pid"/>: exited, and not reaped by their parent.</summary>
    public static IReadOnlyList<int> ZombieChildrenOf(int pid) =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var p) ? p : -1)
            .Where(p => p > 0 && ReadStat(p) is { } s && s.ParentId == pid && s.State == 'Z')];

    /// <summary>
    /// A TcpExt counter of this network namespace (/proc/net/netstat, what nstat shows): ListenOverflows and ListenDrops
    /// count connections the kernel refused because no one accepted them in time.
    /// </summary>
    public static long TcpExtCounter(string name)
    {
        var lines = File.ReadAllLines("/proc/net/netstat").Where(l => l.StartsWith("TcpExt:", StringComparison.Ordinal)).ToArray();
        var names = lines[0].Split(' ');
        var values = lines[1].Split(' ');
        return long.Parse(values[Array.IndexOf(names, name)], CultureInfo.InvariantCulture);
    }

    public static int CountFds(int pid) => Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Count();

    /// <summary>The inodes of the sockets the process has open.</summary>
    public static HashSet<long> SocketInodes(int pid)
    {
        var result = new HashSet<long>();
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal))
                {
                    result.Add(long.Parse(target[8..^1], CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
            }
        }

        return result;
    }

    /// <summary>The inodes of TCP sockets (IPv4 and IPv6) in LISTEN state on <paramref name="port"/>.</summary>
    public static HashSet<long> ListeningTcpInodes(int port)
    {
        var result = new HashSet<long>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var local = fields[1];
                var localPort = int.Parse(local[(local.IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (localPort == port && fields[3] == "0A")
                {
                    result.Add(long.Parse(fields[9], CultureInfo.InvariantCulture));
                }
            }
        }

        return result;
    }

    /// <summary>How many connections wait in the accept queue of the listening TCP socket <paramref name="inode"/> (0 if none or gone).</summary>
    public static int AcceptQueue(long inode)
    {
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields[3] == "0A" && long.Parse(fields[9], CultureInfo.InvariantCulture) == inode)
                {
                    // tx_queue:rx_queue; for a listening socket rx_queue is its accept queue's length.
                    return int.Parse(fields[4][(fields[4].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                }
            }
        }

        return 0;
    }

    /// <summary>The server side of an established TCP connection: its inode and the bytes received but not yet read.</summary>
    public static (long Inode, long UnreadBytes)? EstablishedTcpSocket(int localPort, int remotePort)
    {
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields[3] == "01" && PortOf(fields[1]) == localPort && PortOf(fields[2]) == remotePort)
                {
                    var unread = long.Parse(fields[4][(fields[4].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    return (long.Parse(fields[9], CultureInfo.InvariantCulture), unread);
                }
            }
        }

        return null;

        static int PortOf(string address) => int.Parse(address[(address.IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    private static (char State, int ParentId)? ReadStat(int pid, string? path = null)
    {
        try
        {
            var stat = File.ReadAllText(path ?? $"/proc/{pid}/stat");
            var afterName = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (afterName[0][0], int.Parse(afterName[1], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
