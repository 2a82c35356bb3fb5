// The accept threads of a PrimaryConnectionListener (see PrimaryConnectionListener.cs): each waits in its own epoll
// instance on the one listening socket, accepts until the backlog is empty and hands the burst to its dispatcher shard.
// In Scheduling=ReusePort the listener has a socket per worker slot instead (ReusePortGroup), and the same loop runs on the
// socket of each slot no worker serves.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace KestrelCluster.Primary.Connections;

internal sealed partial class PrimaryConnectionListener
{
    /// <summary>
    /// <paramref name="count"/> threads, each waiting in its own epoll instance on the one socket; thread i routes through
    /// dispatcher shard i (modulo the shards: the dispatcher has one per accept thread of a listener).
    /// </summary>
    private void StartAcceptThreads(int count)
    {
        _listenSocket.Blocking = false; // accept4 reports EAGAIN when the backlog is empty: the end of a burst
        var waiters = new List<SafeFileHandle>();
        try
        {
            _stopEvent = Libc.CreateStopEvent();
            for (var i = 0; i < count; i++)
            {
                waiters.Add(Libc.CreateAcceptWaiter(_listenSocket.SafeHandle, _stopEvent));
            }
        }
        catch
        {
            waiters.ForEach(w => w.Dispose());
            _stopEvent?.Dispose();
            _listenSocket.Dispose();
            throw;
        }

        _acceptThreads = new Thread[count];
        _socketUsers += count;
        for (var i = 0; i < count; i++)
        {
            var (waiter, shard) = (waiters[i], i % _dispatcher.ShardCount);
            _acceptThreads[i] = new Thread(() =>
            {
                try
                {
                    AcceptLoop(_listenSocket.SafeHandle, waiter, shard);
                }
                finally
                {
                    waiter.Dispose();
                    ReleaseSocket();
                }
            })
            {
                IsBackground = true,
                Name = count == 1 ? $"KC accept {EndPoint}" : $"KC accept {i} {EndPoint}",
            };
        }

        foreach (var thread in _acceptThreads)
        {
            thread.Start();
        }
    }

    /// <summary>Whether this listener has a socket per worker slot (Scheduling=ReusePort).</summary>
    public bool IsReusePort => _reusePort is not null;

    /// <summary>
    /// The listening socket a worker of <paramref name="slot"/> accepts on itself: its slot's (ReusePort), the one socket
    /// (Shared), or null (the worker gets handed-off connections).
    /// </summary>
    public SafeSocketHandle? SocketForWorker(int slot) => _reusePort is { } group ? group.SocketFor(slot) : SharedListeningSocket;

    /// <summary>A ready worker of <paramref name="slot"/> accepts on its slot's socket, or no longer does (ReusePort only).</summary>
    public void OnWorkerServing(int slot, bool serving) => _reusePort?.OnWorkerServing(slot, serving);

    private static PrimaryConnectionListener BindReusePort(int id, IPEndPoint endpoint, int slots, int backlog,
        HandoffDispatcher dispatcher, PrimaryListenerTable table, ILogger logger, bool noDelay, Socket[]? takenGroup, bool startAccepting)
    {
        var group = takenGroup is null
            ? ReusePortGroup.Bind(Reserve(endpoint), slots, backlog, noDelay)
            : ReusePortGroup.TakeOver(takenGroup, backlog, noDelay);
        var listener = new PrimaryConnectionListener(id, endpoint, group.FirstSocket, dispatcher, table, logger)
        {
            _reusePort = group,
        };
        if (startAccepting)
        {
            listener.StartAccepting();
        }

        return listener;
    }

    /// <summary>
    /// Binds the probe for <paramref name="endpoint"/>: the real endpoint (port 0 resolved) the group's sockets then bind, or
    /// Kestrel's AddressInUseException.
    /// </summary>
    private static EndPoint Reserve(IPEndPoint endpoint)
    {
        using var probe = ReusePortGroup.NewSocket(endpoint);
        try
        {
            probe.Bind(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new Microsoft.AspNetCore.Connections.AddressInUseException(e.Message, e);
        }

        return probe.LocalEndPoint!;
    }

    private static readonly TimeSpan s_budgetWait = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan s_firstAcceptRetry = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan s_maxAcceptRetry = TimeSpan.FromSeconds(1);

    private readonly LogThrottle _budgetLog = new(LogThrottle.RepeatInterval);
    private readonly LogThrottle _acceptErrorLog = new(LogThrottle.RepeatInterval);

    private static string DescribeAcceptError(int errno) => errno switch
    {
        Libc.EMFILE => "too many open files in this process (EMFILE)",
        Libc.ENFILE => "too many open files in the system (ENFILE)",
        _ => $"out of kernel memory (errno {errno})",
    };

    /// <summary>
    /// Accepts on <paramref name="socket"/> until this listener stops (or <paramref name="keepAccepting"/> says no more: a
    /// reuseport slot whose worker serves it again), handing each burst to dispatcher shard <paramref name="shard"/>.
    /// </summary>
    internal void AcceptLoop(SafeSocketHandle socket, SafeFileHandle waiter, int shard, Func<bool>? keepAccepting = null)
    {
        var burst = new List<AcceptedConnection>(MaxBurst);
        var outOfDescriptorsDelay = TimeSpan.Zero;
        while (true)
        {
            if (!IsAccepting || (keepAccepting is not null && !keepAccepting()))
            {
                // Stopped (the stop event woke us, or it came mid-burst): what was accepted still goes to a worker, and
                // the backlog stays for whoever else holds the socket.
                DispatchBurst(burst, shard);
                return;
            }

            if (burst.Count == 0)
            {
                _dispatcher.WaitForRoom(shard);
            }

            if (!FdBudget.HasRoom)
            {
                // As many connections held as the fd limit allows: what was accepted goes to the workers, and the rest wait
                // in the kernel's backlog (no fd) until workers take some. Back to the top: a stop ends the wait.
                DispatchBurst(burst, shard);
                if (_budgetLog.Count(out var times))
                {
                    ConnectionLog.AcceptAtFdBudget(_logger, FdBudget.Held, FdBudget.Limit, FdBudget.OtherDescriptors,
                        FdBudget.Reserve, times);
                }

                FdBudget.WaitForRoom(s_budgetWait);
                continue;
            }

            // The socket outlives this thread (_socketUsers): it is never disposed under an accept.
            var fd = PeerAddress.Accept(socket, out var peer);

            if (fd >= 0)
            {
                outOfDescriptorsDelay = TimeSpan.Zero;
                burst.Add(new AcceptedConnection(this, fd, peer));
                if (burst.Count == MaxBurst)
                {
                    DispatchBurst(burst, shard);
                }

                continue;
            }

            // Whatever ended the burst, what was accepted goes to the workers first.
            DispatchBurst(burst, shard);
            if (-fd == Libc.EAGAIN)
            {
                if (Libc.WaitReadable(waiter) is not 0 and var errno) // readable: a connection, or the stop event
                {
                    ConnectionLog.AcceptThreadFailed(_logger, EndPoint, errno);
                    return;
                }
            }
            else if (-fd is Libc.EMFILE or Libc.ENFILE or Libc.ENOBUFS or Libc.ENOMEM)
            {
                // Out of descriptors (this process's, or the system's) or of kernel memory: the connection stays in the backlog.
                // Back off rather than spin (as nginx disables accept for a moment), longer while it lasts, and say so
                // once per interval.
                outOfDescriptorsDelay = outOfDescriptorsDelay == TimeSpan.Zero ? s_firstAcceptRetry
                    : TimeSpan.FromTicks(Math.Min(outOfDescriptorsDelay.Ticks * 2, s_maxAcceptRetry.Ticks));
                if (_acceptErrorLog.Count(out var times))
                {
                    ConnectionLog.AcceptOutOfDescriptors(_logger, EndPoint, DescribeAcceptError(-fd), times,
                        (long)outOfDescriptorsDelay.TotalMilliseconds);
                }

                FdBudget.Measure(); // what else holds fds may have grown: the budget follows
                Thread.Sleep(outOfDescriptorsDelay);
            }
            else if (-fd == Libc.EINVAL)
            {
                return;
            }

            // ECONNABORTED and the like: the connection was reset while it waited in the backlog; nothing was lost.
        }
    }

    private void DispatchBurst(List<AcceptedConnection> burst, int shard)
    {
        if (burst.Count > 0)
        {
            _dispatcher.Dispatch(burst, shard);
            burst.Clear();
        }
    }
}
