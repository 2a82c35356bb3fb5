// Scheduling=ReusePort: one SO_REUSEPORT listening socket per worker slot on an endpoint, as nginx's `listen … reuseport`.
// The kernel spreads new connections over the sockets by a hash of the client's address and port, and slot i's worker
// accepts on socket i itself: no primary in the path, no handoff.
//
// The primary keeps every socket, and what is queued on one is never lost (nginx loses a closed reuseport socket's queue):
// while a slot has no worker serving (starting, crashed, being replaced, removed by a scale-down) the primary accepts on
// that slot's socket itself and hands the connections to ready workers, as in RoundRobin; the slot's next worker gets the
// same socket. A socket closes only when the primary stops accepting altogether (the start of its graceful stop).
//
// Binding: a probe socket without SO_REUSEPORT binds first (PrimaryConnectionListener.Reserve), so that a port another
// process holds fails with Kestrel's "address already in use" instead of silently joining its reuseport group.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using Microsoft.Win32.SafeHandles;

namespace KestrelCluster.Primary.Connections;

internal sealed class ReusePortGroup(EndPoint bound, int backlog, bool noDelay)
{
    private readonly Lock _lock = new(); // _slots, each slot's Serving and Run, _stopped
    private readonly List<SlotSocket> _slots = [];
    private PrimaryConnectionListener? _listener; // set by Start: until then nobody accepts
    private bool _stopped;

    /// <summary>Binds <paramref name="slots"/> sockets to <paramref name="bound"/> (the probe's endpoint); none accepts yet.</summary>
    public static ReusePortGroup Bind(EndPoint bound, int slots, int backlog, bool noDelay)
    {
        var group = new ReusePortGroup(bound, backlog, noDelay);
        try
        {
            for (var i = 0; i < slots; i++)
            {
                group.AddSlot();
            }
        }
        catch
        {
            group._slots.ForEach(s => s.Socket.Dispose());
            throw;
        }

        return group;
    }

    /// <summary>The sockets a primary upgrade took over from the previous primary, one per slot, in slot order.</summary>
    public static ReusePortGroup TakeOver(Socket[] taken, int backlog, bool noDelay)
    {
        var group = new ReusePortGroup(taken[0].LocalEndPoint!, backlog, noDelay);
        foreach (var socket in taken)
        {
            socket.Blocking = false;
            group._slots.Add(new SlotSocket(socket));
        }

        return group;
    }

    /// <summary>Every slot's socket, in slot order (for a primary upgrade).</summary>
    public IReadOnlyList<SafeSocketHandle> Sockets
    {
        get
        {
            lock (_lock)
            {
                return [.. _slots.Select(s => s.Socket.SafeHandle)];
            }
        }
    }

    /// <summary>Slot 0's socket: the listener's own (its endpoint, its options).</summary>
    public Socket FirstSocket => _slots[0].Socket;

    /// <summary>The primary accepts on every socket no worker serves (until one does); once.</summary>
    public void Start(PrimaryConnectionListener listener)
    {
        lock (_lock)
        {
            if (_listener is not null)
            {
                return;
            }

            _listener = listener;
            foreach (var slot in _slots.Where(s => s.Serving == 0))
            {
                StartPrimaryAccept(slot);
            }
        }
    }

    /// <summary>
    /// Slot <paramref name="slot"/>'s socket, for its worker (created, with the slots before it, after a scale-up); null once stopped.
    /// </summary>
    public SafeSocketHandle? SocketFor(int slot)
    {
        lock (_lock)
        {
            if (_stopped)
            {
                return null;
            }

            while (_slots.Count <= slot)
            {
                StartPrimaryAccept(AddSlot()); // no worker serves a new slot yet
            }

            return _slots[slot].Socket.SafeHandle;
        }
    }

    /// <summary>
    /// A worker of <paramref name="slot"/> serves (it is ready: its Kestrel accepts on the slot's socket) or no longer does
    /// (retiring, or gone). The primary accepts on the socket exactly while no worker serves it.
    /// </summary>
    public void OnWorkerServing(int slot, bool serving)
    {
        lock (_lock)
        {
            if (_stopped || slot >= _slots.Count)
            {
                return;
            }

            var socket = _slots[slot];
            socket.Serving = Math.Max(0, socket.Serving + (serving ? 1 : -1));
            if (socket.Serving > 0)
            {
                StopPrimaryAccept(socket);
            }
            else if (socket.Run is null)
            {
                StartPrimaryAccept(socket);
            }
        }
    }

    /// <summary>Stops the primary's accepting and closes every socket (each once its accept thread is out).</summary>
    public void Stop()
    {
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            foreach (var socket in _slots)
            {
                StopPrimaryAccept(socket);
                socket.Release();
            }
        }
    }

    private SlotSocket AddSlot()
    {
        var socket = NewSocket(bound);
        try
        {
            Libc.SetReusePort(socket);
            socket.Bind(bound);
            if (noDelay)
            {
                socket.NoDelay = true; // accepted sockets inherit it (see PrimaryConnectionListener.Bind)
            }

            socket.Listen(backlog);
            socket.Blocking = false; // the primary's accept4 reports EAGAIN at the end of a burst; workers wrap their own fd
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var slot = new SlotSocket(socket);
        _slots.Add(slot);
        return slot;
    }

    /// <summary>A TCP socket for <paramref name="endpoint"/>, dual mode for [::] as Kestrel's.</summary>
    public static Socket NewSocket(EndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
        {
            socket.DualMode = true; // as Kestrel's CreateDefaultBoundListenSocket
        }

        return socket;
    }

    private void StartPrimaryAccept(SlotSocket slot)
    {
        if (_listener is not { IsAccepting: true } listener)
        {
            return;
        }

        var stopEvent = Libc.CreateStopEvent();
        SafeFileHandle waiter;
        try
        {
            waiter = Libc.CreateAcceptWaiter(slot.Socket.SafeHandle, stopEvent);
        }
        catch
        {
            stopEvent.Dispose();
            throw;
        }

        var run = new PrimaryRun(stopEvent);
        slot.Run = run;
        slot.Users++;
        new Thread(() =>
        {
            try
            {
                listener.AcceptLoop(slot.Socket.SafeHandle, waiter, shard: 0, () => !run.Stopped);
            }
            finally
            {
                waiter.Dispose();
                stopEvent.Dispose();
                lock (_lock)
                {
                    if (slot.Run == run)
                    {
                        slot.Run = null; // it left on its own (the socket failed): a slot that loses its worker starts another
                    }

                    slot.Release();
                }
            }
        })
        {
            IsBackground = true,
            Name = $"KC accept slot {_slots.IndexOf(slot)} {listener.EndPoint}",
        }.Start();
    }

    private static void StopPrimaryAccept(SlotSocket slot)
    {
        if (slot.Run is not { } run)
        {
            return;
        }

        slot.Run = null;
        run.Stopped = true;
        try
        {
            Libc.Signal(run.StopEvent); // the thread wakes, dispatches what it accepted, and leaves; the queue stays
        }
        catch (ObjectDisposedException)
        {
            // The thread has left already (the socket failed): nothing to wake.
        }
    }

    /// <summary>One slot's socket, and who uses it.</summary>
    private sealed class SlotSocket(Socket socket)
    {
        public readonly Socket Socket = socket;
        public int Serving; // ready workers accepting on it (a replacement and the worker it replaces may both, for a moment)
        public PrimaryRun? Run; // the primary's accept thread on it, while no worker serves
        public int Users = 1; // the group, plus an accept thread while one runs: the last one out closes the socket

        public void Release()
        {
            if (--Users == 0)
            {
                Socket.Dispose();
            }
        }
    }

    private sealed class PrimaryRun(SafeFileHandle stopEvent)
    {
        public readonly SafeFileHandle StopEvent = stopEvent;
        public volatile bool Stopped;
    }
}
