// Where a primary keeps its sockets, and how the primary and `kestrel-cluster` (which compiles this file in too) tell a
// live one from what a killed one left. Every primary makes a private directory in the temp directory, named as the
// runtime's diagnostic sockets are: kestrelcluster-PID-random (mode 0700), with control.sock (workers), admin.sock (the
// tool) and, during an upgrade, upgrade.sock. A primary that is SIGKILLed, or dies with its pid namespace, cannot remove
// it; its pid may be reused by then, or mean nothing here (pid 1 of a container). So a directory is judged by its
// sockets, not its name: a socket file nobody listens on any more refuses a connection (ECONNREFUSED).
using System.Globalization;
using System.Net.Sockets;

namespace KestrelCluster.Protocol;

internal static class RuntimeDirectories
{
    public const string Prefix = "kestrelcluster-";
    public const string AdminSocketName = "admin.sock";
    public const string ControlSocketName = "control.sock";

    /// <summary>
    /// How old a directory's newest socket file must be before its refusals count: a primary binds, then listens, and
    /// a connection between the two is refused too. Seconds are far more than that takes.
    /// </summary>
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(10);

    /// <summary>Every kestrelcluster-PID-* directory in <paramref name="tempPath"/>, with the pid in its name.</summary>
    public static IEnumerable<(int ProcessId, string Directory)> Enumerate(string tempPath)
    {
        IEnumerable<string> directories;
        try
        {
            directories = System.IO.Directory.EnumerateDirectories(tempPath, Prefix + "*").ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var directory in directories)
        {
            var name = Path.GetFileName(directory.AsSpan())[Prefix.Length..];
            var dash = name.IndexOf('-');
            if (dash > 0 && int.TryParse(name[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                yield return (pid, directory);
            }
        }
    }

    /// <summary>Removes what primaries that are gone left in <paramref name="tempPath"/> (see IsStale); how many it removed.</summary>
    public static int RemoveStale(string tempPath)
    {
        var removed = 0;
        foreach (var (_, directory) in Enumerate(tempPath))
        {
            if (IsStale(directory, DateTime.UtcNow))
            {
                try
                {
                    System.IO.Directory.Delete(directory, recursive: true);
                    removed++;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Another primary starting at the same moment removed it first, or it is not ours to remove.
                }
            }
        }

        return removed;
    }

    /// <summary>Whether a process listens on the stream socket at <paramref name="path"/> (admin.sock) now.</summary>
    public static bool IsListening(string path) => File.Exists(path) && Probe(path, SocketType.Stream) != SocketError.ConnectionRefused;

    /// <summary>
    /// Whether <paramref name="directory"/> is what a primary that is gone left behind: its admin socket (or, without
    /// one, its control socket) refuses connections and is older than <see cref="StaleAfter"/>, or it has neither and
    /// is that old itself. A directory this user cannot list (another user's) is never stale.
    /// </summary>
    public static bool IsStale(string directory, DateTime utcNow)
    {
        try
        {
            // Another user's directory (mode 0700) cannot be listed: it throws here, and is never stale for us.
            _ = System.IO.Directory.EnumerateFileSystemEntries(directory).Any();
            var admin = Path.Combine(directory, AdminSocketName);
            var control = Path.Combine(directory, ControlSocketName);
            var (socket, type) = File.Exists(admin) ? (admin, SocketType.Stream)
                : File.Exists(control) ? (control, SocketType.Seqpacket)
                : (null, SocketType.Unknown);
            var age = utcNow - (socket is null ? System.IO.Directory.GetLastWriteTimeUtc(directory) : File.GetLastWriteTimeUtc(socket));
            return age >= StaleAfter && (socket is null || Probe(socket, type) == SocketError.ConnectionRefused);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Connects to the socket file and hangs up at once: Success, ConnectionRefused (nobody listens), or another error
    /// (WouldBlock: someone listens, with a full backlog; a non-blocking connect never waits for it).
    /// </summary>
    private static SocketError Probe(string path, SocketType type)
    {
        using var socket = new Socket(AddressFamily.Unix, type, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return SocketError.Success;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
