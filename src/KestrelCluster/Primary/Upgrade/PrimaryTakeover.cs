// The new side of a primary upgrade: a primary started by a running one (UpgradeInvitation in its environment) binds no
// endpoint the running primary listens on. It asks for each one's listening socket over the upgrade socket instead,
// holds its accept threads until every worker of its own is ready, then accepts beside the old primary and tells it so.
// The old primary then stops accepting and passes on the connections it had not handed to a worker; from TakeOver on,
// this process is the primary (and reports to systemd). The old side and the protocol: PrimaryUpgrade.cs,
// Protocol/UpgradeProtocol.cs.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Upgrade;

internal sealed class PrimaryTakeover(UpgradeInvitation invitation, ILogger logger) : IDisposable
{
    private static readonly TimeSpan s_frameTimeout = TimeSpan.FromSeconds(10);

    private readonly Lock _lock = new();
    private readonly List<PrimaryConnectionListener> _held = []; // not accepting until the workers are ready
    private readonly Dictionary<int, PrimaryConnectionListener> _byPreviousId = []; // the old primary's listener ids
    private UpgradeChannel? _channel;
    private int _nextRequest;
    private int _serving;

    /// <summary>The pid of the primary this one takes over from.</summary>
    public int FromProcessId => invitation.FromProcessId;

    /// <summary>The last worker id the old primary used: this one's workers are numbered on from it.</summary>
    public int LastWorkerId => invitation.LastWorkerId;

    /// <summary>
    /// The old primary's listening socket for <paramref name="endpoint"/> (in ReusePort scheduling its socket per worker slot)
    /// and its id there, or null when it has none (the endpoint is new: bind it). Throws, and the start fails, when the old
    /// primary refuses or is gone.
    /// </summary>
    public (Socket[] Sockets, int PreviousId)? Take(EndPoint endpoint)
    {
        lock (_lock)
        {
            var channel = Connected();
            var requestId = ++_nextRequest;
            channel.Send(ControlFrames.Register(requestId, endpoint), s_frameTimeout);
            var (frame, fds) = channel.Receive(s_frameTimeout) ?? throw Gone("hung up");
            if (!ControlFrames.TryReadRegistered(frame, out var answered, out var previousId, out _) || answered != requestId
                || (previousId > 0 ? fds.Length == 0 : fds.Length != 0))
            {
                Array.ForEach(fds, Libc.CloseDescriptor);
                throw Gone("answered with a frame that is not part of the upgrade protocol");
            }

            if (previousId <= 0)
            {
                UpgradeLog.NewEndpoint(logger, endpoint, FromProcessId);
                return null;
            }

            UpgradeLog.ListenerTakenOver(logger, endpoint, FromProcessId);
            return ([.. fds.Select(fd => new Socket(new SafeSocketHandle(fd, ownsHandle: true)))], previousId);
        }
    }

    /// <summary>A listener of this primary, held back from accepting until <see cref="BeginServing"/>.</summary>
    public void Hold(PrimaryConnectionListener listener, int? previousId)
    {
        lock (_lock)
        {
            _held.Add(listener);
            if (previousId is { } id)
            {
                _byPreviousId[id] = listener;
            }
        }
    }

    /// <summary>
    /// Every worker is ready: accept (beside the old primary), tell it, then serve what it passes on. <paramref name="tookOver"/>
    /// runs once, when the old primary has stopped accepting (or is gone).
    /// </summary>
    public void BeginServing(HandoffDispatcher dispatcher, Action tookOver)
    {
        if (Interlocked.Exchange(ref _serving, 1) != 0)
        {
            return;
        }

        UpgradeChannel channel;
        lock (_lock)
        {
            _held.ForEach(l => l.StartAccepting());
            try
            {
                channel = Connected();
                channel.Send(ControlFrames.Ready(), s_frameTimeout);
            }
            catch (Exception e) when (e is IOException or TimeoutException or SocketException or InvalidOperationException)
            {
                ServeAlone(e is IOException or TimeoutException ? e.Message : "could not be reached", tookOver);
                return;
            }
        }

        UpgradeLog.AcceptingBesidePrevious(logger, FromProcessId);
        _ = ControlChannelThread.Start("KC upgrade", () => ReadFromPrevious(channel, dispatcher, tookOver));
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _channel?.Dispose();
        }
    }

    /// <summary>Until the old primary exits: connections it passes on, and its TakeOver.</summary>
    private void ReadFromPrevious(UpgradeChannel channel, HandoffDispatcher dispatcher, Action tookOver)
    {
        var tookOverDone = false;
        var entries = new HandoffEntry[ControlFrames.MaxFdsPerMessage];
        string reason;
        try
        {
            while (true)
            {
                if (channel.Receive(Timeout.InfiniteTimeSpan) is not var (frame, fds))
                {
                    reason = "exited";
                    break;
                }

                if (fds.Length == 0 && frame is [(byte)FrameType.TakeOver] && !tookOverDone)
                {
                    tookOverDone = true;
                    UpgradeLog.TookOver(logger, FromProcessId, Environment.ProcessId);
                    ClaimSocketFiles();
                    tookOver();
                }
                else if (ControlFrames.TryReadHandoff(frame, fds.Length, entries))
                {
                    dispatcher.Dispatch(Connections(entries.AsSpan(0, fds.Length), fds));
                }
                else
                {
                    Array.ForEach(fds, Libc.CloseDescriptor);
                    reason = "sent a frame that is not part of the upgrade protocol";
                    break;
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException)
        {
            reason = e.Message;
        }
#pragma warning disable CA1031 // a thread of its own: an exception would end the process; this channel ends instead
        catch (Exception e)
#pragma warning restore CA1031
        {
            reason = $"could not be served (internal error: {e.Message})";
        }

        channel.Dispose();
        if (!tookOverDone)
        {
            ServeAlone(reason, tookOver);
        }
    }

    /// <summary>The old primary went away before its TakeOver: this one is the primary all the same.</summary>
    private void ServeAlone(string reason, Action tookOver)
    {
        UpgradeLog.PreviousPrimaryGone(logger, FromProcessId, reason);
        ClaimSocketFiles();
        tookOver();
    }

    private void ClaimSocketFiles()
    {
        lock (_lock)
        {
            _byPreviousId.Values.ToList().ForEach(l => l.ClaimSocketFile());
        }
    }

    /// <summary>The passed-on sockets as this primary's accepted connections (on the listener that took the old one's place).</summary>
    private List<AcceptedConnection> Connections(ReadOnlySpan<HandoffEntry> entries, int[] fds)
    {
        var connections = new List<AcceptedConnection>(fds.Length);
        lock (_lock)
        {
            for (var i = 0; i < fds.Length; i++)
            {
                if (_byPreviousId.TryGetValue(entries[i].ListenerId, out var listener))
                {
                    connections.Add(new AcceptedConnection(listener, fds[i], entries[i].Peer));
                }
                else
                {
                    Libc.CloseDescriptor(fds[i]); // the old primary only passes connections of listeners it gave this one
                }
            }
        }

        UpgradeLog.ConnectionsReceived(logger, connections.Count);
        return connections;
    }

    /// <summary>The channel to the old primary, connected and welcomed on first use. Under the lock.</summary>
    private UpgradeChannel Connected()
    {
        if (_channel is not null)
        {
            return _channel;
        }

        UpgradeChannel channel;
        try
        {
            channel = UpgradeChannel.Connect(invitation.SocketPath);
        }
        catch (SocketException e)
        {
            throw Gone($"cannot be reached at {invitation.SocketPath} ({e.SocketErrorCode})");
        }

        try
        {
            channel.Send(UpgradeProtocol.Hello(invitation.Secret), s_frameTimeout);
            var (frame, fds) = channel.Receive(s_frameTimeout) ?? throw Gone("hung up");
            Array.ForEach(fds, Libc.CloseDescriptor);
            if (frame is [(byte)FrameType.UpgradeRefused, ..])
            {
                throw new InvalidOperationException($"The running primary (pid {FromProcessId}) refused to hand over: " +
                    UpgradeProtocol.ReadRefused(frame) + ".");
            }

            if (frame is not [(byte)FrameType.UpgradeAccepted])
            {
                throw Gone("answered with a frame that is not part of the upgrade protocol");
            }
        }
        catch
        {
            channel.Dispose();
            throw;
        }

        return _channel = channel;
    }

    private InvalidOperationException Gone(string what) => new($"Cannot take over from the running primary (pid {FromProcessId}): it " +
        $"{what}. This process was started to upgrade it (SIGUSR2); the running primary serves on.");
}
