// How a primary's runtime directory is told from what a killed primary left: by whether anyone listens on its socket,
// and only once it is older than a primary between its bind and its listen could be.
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests;

public sealed class RuntimeDirectoriesTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("kc-runtime-dirs-").FullName;
    private readonly List<Socket> _listening = [];

    public void Dispose()
    {
        foreach (var socket in _listening)
        {
            socket.Dispose();
        }

        Directory.Delete(_tmp, recursive: true);
    }

    [Fact]
    public void ADirectory_IsStaleOnlyWhenNobodyListensOnItsSocket_AndItIsOldEnough()
    {
        var live = MakeDirectory("kestrelcluster-1001-live", RuntimeDirectories.AdminSocketName, SocketType.Stream, keepListening: true);
        var dead = MakeDirectory("kestrelcluster-1002-dead", RuntimeDirectories.AdminSocketName, SocketType.Stream, keepListening: false);
        var deadControlOnly = MakeDirectory("kestrelcluster-1003-ctl", RuntimeDirectories.ControlSocketName, SocketType.Seqpacket,
            keepListening: false);
        var liveControlOnly = MakeDirectory("kestrelcluster-1004-ctl", RuntimeDirectories.ControlSocketName, SocketType.Seqpacket,
            keepListening: true);
        var notOurs = Directory.CreateDirectory(Path.Combine(_tmp, "kestrelcluster-x-y")).FullName;

        var now = DateTime.UtcNow;
        Assert.False(RuntimeDirectories.IsStale(dead, now), "a refusing socket only just bound is a primary about to listen");

        var later = now + RuntimeDirectories.StaleAfter + TimeSpan.FromSeconds(1);
        Assert.False(RuntimeDirectories.IsStale(live, later));
        Assert.True(RuntimeDirectories.IsStale(dead, later));
        Assert.True(RuntimeDirectories.IsStale(deadControlOnly, later));
        Assert.False(RuntimeDirectories.IsStale(liveControlOnly, later));
        Assert.True(RuntimeDirectories.IsListening(Path.Combine(live, RuntimeDirectories.AdminSocketName)));
        Assert.False(RuntimeDirectories.IsListening(Path.Combine(dead, RuntimeDirectories.AdminSocketName)));
        Assert.False(RuntimeDirectories.IsListening(Path.Combine(notOurs, RuntimeDirectories.AdminSocketName)));

        // Enumerate names only kestrelcluster-PID-* directories, with their pid.
        Assert.Equal([1001, 1002, 1003, 1004], RuntimeDirectories.Enumerate(_tmp).Select(d => d.ProcessId).Order());
    }

    private string MakeDirectory(string name, string socketName, SocketType type, bool keepListening)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_tmp, name)).FullName;
        var socket = new Socket(AddressFamily.Unix, type, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(directory, socketName)));
        socket.Listen();
        if (keepListening)
        {
            _listening.Add(socket);
        }
        else
        {
            // The fd only, as a process that dies closes it: Socket.Dispose (and its finalizer) would delete the file too.
            socket.SafeHandle.Dispose();
            GC.SuppressFinalize(socket);
        }

        return directory;
    }
}
