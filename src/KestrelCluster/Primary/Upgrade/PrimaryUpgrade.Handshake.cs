// The old side of a primary upgrade, its checks and its handshake (see PrimaryUpgrade.cs): whether an upgrade can work
// here at all, who may connect to the upgrade socket, the hello, and the listening sockets the new primary asks for.
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Protocol;

namespace KestrelCluster.Primary.Upgrade;

internal sealed partial class PrimaryUpgrade
{
    /// <summary>Why this primary cannot be upgraded in place, or null when it can.</summary>
    public string? RefusalReason()
    {
        if (Environment.ProcessId == 1)
        {
            return "this primary is PID 1 (a container's init): the container ends when it exits, so no new primary can take over " +
                "inside it. Deploy a new image instead (the orchestrator's rolling update); SIGHUP still restarts the workers.";
        }

        if (ContainerInit() is { } init)
        {
            return $"this primary's parent is {init}, a container's init, which ends the container when this process exits, so no " +
                "new primary can take over inside it. Deploy a new image instead; SIGHUP still restarts the workers.";
        }

        if (LauncherWatch.Launcher is { } launcherName)
        {
            return $"this primary runs under {launcherName}, which ends when this process exits, so a new primary could not outlive " +
                "it. Run the app itself (dotnet app.dll, or its executable) to upgrade the primary; SIGHUP restarts the workers.";
        }

        if (_launcher.HostedByAnotherProgram)
        {
            return "this primary runs inside another program (a test host), which cannot be started again as a primary.";
        }

        if (_pool.IsStopping)
        {
            return "the cluster is stopping.";
        }

        return _pool.RuntimeDirectory is null ? "the workers have not been started yet." : null;
    }

    /// <summary>The name of this process's parent when it is a container init that exits with its child (tini, docker-init, …).</summary>
    private static string? ContainerInit()
    {
        try
        {
            var name = File.ReadAllText($"/proc/{Libc.ParentProcessId}/comm").Trim();
            return name is "tini" or "docker-init" or "dumb-init" or "catatonit" ? name : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The new primary's connection (peer credentials: that pid, this user); strangers are refused and logged.</summary>
    private UpgradeChannel AcceptFrom(Socket listenSocket, Process process, Stopwatch deadline)
    {
        while (true)
        {
            if (process.HasExited)
            {
                throw new IOException("exited before it connected");
            }

            if (deadline.Elapsed >= _timeout)
            {
                throw new TimeoutException();
            }

            ThrowIfStopping();
            if (!listenSocket.Poll(s_poll, SelectMode.SelectRead))
            {
                continue;
            }

            var socket = listenSocket.Accept();
            var peer = Libc.GetPeerCredentials(socket);
            if (peer.ProcessId == process.Id && peer.UserId == Libc.EffectiveUserId)
            {
                return new UpgradeChannel(socket);
            }

            UpgradeLog.StrangerRefused(_logger, peer.ProcessId, peer.UserId);
            socket.Dispose();
        }
    }

    private static void Welcome(UpgradeChannel channel, byte[] secret)
    {
        var hello = channel.Receive(s_frameTimeout) ?? throw new IOException("hung up before its hello");
        var version = UpgradeProtocol.ReadHello(hello.Frame, out var received);
        if (version != UpgradeProtocol.Version || !ControlServer.SecretsEqual(secret, received) || hello.Fds.Length > 0)
        {
            Array.ForEach(hello.Fds, Libc.CloseDescriptor);
            var reason = version is >= 0 and not UpgradeProtocol.Version
                ? $"it speaks upgrade protocol {version}, this primary {UpgradeProtocol.Version} (KestrelCluster " +
                    $"{ControlProtocol.LibraryVersion}): stop this primary and start the new build instead"
                : "its hello is not the invitation's";
            channel.Send(UpgradeProtocol.Refused(reason), s_frameTimeout);
            throw new IOException($"was refused: {reason}");
        }

        channel.Send(UpgradeProtocol.Accepted(), s_frameTimeout);
    }

    /// <summary>Answers the new primary's Register frames with the listening sockets, until it says Ready.</summary>
    private void ServeUntilReady(UpgradeChannel channel, Stopwatch deadline)
    {
        var claimed = new HashSet<int>();
        while (true)
        {
            (byte[] Frame, int[] Fds)? received;
            try
            {
                received = channel.Receive(s_poll);
            }
            catch (TimeoutException) when (deadline.Elapsed < _timeout)
            {
                ThrowIfStopping();
                continue;
            }

            var (frame, fds) = received ?? throw new IOException("exited before it was ready");
            Array.ForEach(fds, Libc.CloseDescriptor); // the new primary sends none
            if (fds.Length == 0 && frame is [(byte)FrameType.Ready])
            {
                return;
            }

            if (fds.Length > 0 || !ControlFrames.TryReadRegister(frame, out var requestId, out var endpoint))
            {
                throw new InvalidDataException("sent a frame that is not part of the upgrade protocol");
            }

            var listener = _listeners.Match(endpoint!, claimed);
            if (listener is null)
            {
                channel.Send(ControlFrames.Registered(requestId, 0, "none"), s_frameTimeout);
                continue;
            }

            claimed.Add(listener.Id);
            SendWithFds(channel, ControlFrames.Registered(requestId, listener.Id, EndpointText.Format(listener.EndPoint)),
                listener.ListeningSockets); // one, or in ReusePort one per worker slot
        }
    }

    /// <summary>A stop signal during the upgrade stops both primaries: the new one is not left serving alone.</summary>
    private void ThrowIfStopping()
    {
        if (_pool.IsStopping)
        {
            throw new IOException("is stopped: this primary is stopping");
        }
    }

    private static void SendWithFds(UpgradeChannel channel, byte[] frame, IReadOnlyList<SafeHandle> handles)
    {
        var added = new bool[handles.Count];
        try
        {
            var fds = new int[handles.Count];
            for (var i = 0; i < handles.Count; i++)
            {
                handles[i].DangerousAddRef(ref added[i]);
                fds[i] = (int)handles[i].DangerousGetHandle();
            }

            channel.Send(frame, fds, s_frameTimeout);
        }
        finally
        {
            for (var i = 0; i < handles.Count; i++)
            {
                if (added[i])
                {
                    handles[i].DangerousRelease();
                }
            }
        }
    }
}
