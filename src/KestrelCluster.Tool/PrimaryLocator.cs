// Finds a running primary's admin socket, as dotnet-counters finds a process's diagnostic socket: every primary
// keeps a private runtime directory named after its pid in the temp directory ($TMPDIR, else /tmp), and its admin
// socket is admin.sock in there. The tool and the app must agree on TMPDIR.
using System.Globalization;

namespace KestrelCluster.Tool;

internal static class PrimaryLocator
{
    private const string Prefix = "kestrelcluster-";
    private const string SocketName = "admin.sock";

    /// <summary>The running primaries of this user (their pid and admin socket), lowest pid first.</summary>
    public static List<(int ProcessId, string SocketPath)> FindAll()
    {
        var found = new List<(int, string)>();
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), Prefix + "*"))
        {
            var name = Path.GetFileName(directory).AsSpan(Prefix.Length);
            var dash = name.IndexOf('-');
            var socket = Path.Combine(directory, SocketName);
            if (dash > 0 && int.TryParse(name[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && Directory.Exists($"/proc/{pid}") && File.Exists(socket))
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
