// How many accepted connections the primary may hold at once — waiting for a worker, or handed off and not yet
// acknowledged — without running out of file descriptors. Every one it holds is an fd; a primary out of fds can start
// no worker, answer no admin request and take no upgrade, and a connection flood past the open-files limit used to leave
// it alive but dark for good. So, as HAProxy derives its maxconn from the limit: the budget is the open-files limit,
// less the fds the process holds for everything else (measured), less a reserve for what the primary must always be able
// to do. An accept thread at the budget stops accepting; the rest wait in the kernel's backlog, where they cost no fd.
using KestrelCluster.Interop;

namespace KestrelCluster.Primary.Connections;

internal sealed class ConnectionFdBudget
{
    /// <summary>Fds kept free whatever the connections: a worker's start (pipes, a control socket), the admin socket, an upgrade.</summary>
    internal const int BaseReserve = 64;

    /// <summary>The reserve grows by this per worker: each live worker holds a control socket and its output pipes.</summary>
    internal const int ReservePerWorker = 4;

    /// <summary>The budget never drops below this: with fewer, the primary could not keep two workers busy.</summary>
    internal const int MinBudget = 16;

    private readonly object _room = new(); // accept threads waiting for room wait on it
    private int _waiting;
    private int _held;
    private volatile int _budget;
    private volatile int _otherDescriptors;

    /// <param name="limit">The open-files limit (soft) of this process.</param>
    /// <param name="reserve">Fds kept free for the primary's own work (see <see cref="ReserveFor"/>).</param>
    public ConnectionFdBudget(long limit, int reserve)
    {
        Limit = limit;
        Reserve = reserve;
        Measure();
    }

    /// <summary>A budget for this process: its soft open-files limit (raised to the hard one first), and the reserve for
    /// <paramref name="workers"/> workers.</summary>
    public static ConnectionFdBudget ForThisProcess(int workers)
    {
        var before = Libc.RaiseOpenFilesLimit();
        return new ConnectionFdBudget(Libc.OpenFilesLimit.Soft, ReserveFor(workers)) { SoftLimitBefore = before };
    }

    /// <summary>The soft open-files limit the process started with (before <see cref="ForThisProcess"/> raised it).</summary>
    public long SoftLimitBefore { get; private init; }

    public static int ReserveFor(int workers) => BaseReserve + (ReservePerWorker * Math.Max(0, workers));

    /// <summary>The open-files limit this budget is derived from.</summary>
    public long Limit { get; }

    /// <summary>Fds kept free for the primary's own work.</summary>
    public int Reserve { get; }

    /// <summary>The most connections the primary holds at once, as last measured.</summary>
    public int Budget => _budget;

    /// <summary>Accepted connections whose fd the primary holds now.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>Fds the process holds for everything but connections, as last measured.</summary>
    public int OtherDescriptors => _otherDescriptors;

    /// <summary>Whether an accept may take one more connection.</summary>
    public bool HasRoom => Volatile.Read(ref _held) < _budget;

    /// <summary>A connection was accepted (its fd is open).</summary>
    public void OnOpened() => Interlocked.Increment(ref _held);

    /// <summary>A held connection's fd was closed (a worker took it, or it was closed here).</summary>
    public void OnClosed()
    {
        if (Interlocked.Decrement(ref _held) < _budget && Volatile.Read(ref _waiting) > 0)
        {
            WakeWaiters();
        }
    }

    /// <summary>
    /// Waits until an accept may take one more connection, or <paramref name="timeout"/> has passed (a wake-up missed in
    /// a race costs at most that long).
    /// </summary>
    public void WaitForRoom(TimeSpan timeout)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            lock (_room)
            {
                if (!HasRoom)
                {
                    Monitor.Wait(_room, timeout);
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    private void WakeWaiters()
    {
        lock (_room)
        {
            Monitor.PulseAll(_room);
        }
    }

    /// <summary>
    /// Counts the process's open fds again: what is not a held connection is the app's and the runtime's (assemblies,
    /// pipes, the workers' channels…), and the budget is what the limit leaves beside them and the reserve.
    /// </summary>
    public void Measure()
    {
        var held = Held;
        var open = Libc.CountOpenDescriptors();
        var other = Math.Max(0, open - held);
        _otherDescriptors = other;
        _budget = (int)Math.Clamp(Limit - other - Reserve, MinBudget, int.MaxValue);
        if (HasRoom && Volatile.Read(ref _waiting) > 0)
        {
            WakeWaiters();
        }
    }
}
