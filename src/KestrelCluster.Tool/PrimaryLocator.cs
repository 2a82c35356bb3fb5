// Finds a running primary's admin socket, as dotnet-counters finds a process's diagnostic socket: every primary
// keeps a private runtime directory named after its pid in the temp directory ($TMPDIR, else /tmp), and its admin
// socket is admin.sock in there. The tool and the app must agree on TMPDIR.
using KestrelCluster.Protocol;

namespace KestrelCluster.Tool;

internal static class PrimaryLocator
{
    private const string Prefix = RuntimeDirectories.Prefix;
    private const string SocketName = RuntimeDirectories.AdminSocketName;

    /// <summary>
    /// The running primaries of this user (their pid and admin socket), lowest pid first: those whose admin socket
    /// someone listens on. What a killed primary left (its pid gone, or reused by another process) is passed over.
    /// </summary>
    public static List<(int ProcessId, string SocketPath)> FindAll()
    {
        var found = new List<(int, string)>();
        foreach (var (pid, directory) in RuntimeDirectories.Enumerate(Path.GetTempPath()))
        {
            var socket = Path.Combine(directory, SocketName);
            if (RuntimeDirectories.IsListening(socket))
            {
                found.Add((pid, socket));
            }
        }

        found.Sort();
        return found;
    }

    /// <summary>The admin socket of <paramref name="processId"/>, or of the only primary running; an error text otherwise.</summary>
    public static (string? SocketPath, string? Error) Find(int? processId)
    {
        var all = FindAll();
        if (processId is { } pid)
        {
            return all.FirstOrDefault(p => p.ProcessId == pid) is { SocketPath: { } path }
                ? (path, null)
                : (null, $"Process {pid} is not a running KestrelCluster primary of this user (no {Prefix}{pid}-*/{SocketName} in " +
                    $"{Path.GetTempPath()}). Give the primary's pid (its log says 'Primary pid N'), not a worker's or dotnet run's.");
        }

        return all.Count switch
        {
            0 => (null, $"No KestrelCluster primary of this user is running (no {Prefix}PID-*/{SocketName} in {Path.GetTempPath()}; " +
                "the app and this tool must see the same TMPDIR)."),
            1 => (all[0].SocketPath, null),
            _ => (null, $"{all.Count} primaries are running (pids {string.Join(", ", all.Select(p => p.ProcessId))}); say which: " +
                "kestrel-cluster status PID."),
        };
    }
}
