// The primary's bound listeners, by id, and the rule that pairs an endpoint a worker's Kestrel asks for with
// the primary listener that serves it.
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Primary.Connections;

internal sealed class PrimaryListenerTable
{
    private readonly Lock _lock = new();
    private readonly List<PrimaryConnectionListener> _listeners = [];
    private int _nextId;

    public int NextId() => Interlocked.Increment(ref _nextId);

    public void Add(PrimaryConnectionListener listener)
    {
        lock (_lock)
        {
            _listeners.Add(listener);
        }
    }

    public void Remove(PrimaryConnectionListener listener)
    {
        lock (_lock)
        {
            _listeners.Remove(listener);
        }
    }

    public IReadOnlyList<PrimaryConnectionListener> Snapshot()
    {
        lock (_lock)
        {
            return [.. _listeners];
        }
    }

    /// <summary>A worker of <paramref name="slot"/> on <paramref name="listenerIds"/> is ready, or stopped serving (ReusePort).</summary>
    public void OnWorkerServing(int[] listenerIds, int slot, bool serving)
    {
        foreach (var listener in Snapshot())
        {
            if (Array.IndexOf(listenerIds, listener.Id) >= 0)
            {
                listener.OnWorkerServing(slot, serving);
            }
        }
    }

    /// <summary>Closes every listening socket, so the primary accepts nothing more (the start of a graceful stop).</summary>
    public void StopAccepting()
    {
        foreach (var listener in Snapshot())
        {
            listener.StopAccepting();
        }
    }

    /// <summary>
    /// Finds the listener for an endpoint a worker binds. A worker's Kestrel asks for the primary's real
    /// endpoint (the primary passes its addresses on) or for what the primary itself asked for (the same
    /// configuration); port 0 pairs with the first port-0 listener of that address the worker has not claimed.
    /// </summary>
    public PrimaryConnectionListener? Match(EndPoint requested, IReadOnlySet<int> claimedByWorker)
    {
        lock (_lock)
        {
            foreach (var listener in _listeners)
            {
                if (!claimedByWorker.Contains(listener.Id) && listener.IsAccepting && SameEndPoint(listener.EndPoint, requested))
                {
                    return listener;
                }
            }

            foreach (var listener in _listeners)
            {
                if (!claimedByWorker.Contains(listener.Id) && listener.IsAccepting && SameEndPoint(listener.RequestedEndPoint, requested))
                {
                    return listener;
                }
            }

            return null;
        }
    }

    private static bool SameEndPoint(EndPoint a, EndPoint b) => (a, b) switch
    {
        (IPEndPoint x, IPEndPoint y) => x.Port == y.Port && x.Address.Equals(y.Address),
        (UnixDomainSocketEndPoint x, UnixDomainSocketEndPoint y) => string.Equals(x.ToString(), y.ToString(), StringComparison.Ordinal),
        (Microsoft.AspNetCore.Connections.FileHandleEndPoint x, Microsoft.AspNetCore.Connections.FileHandleEndPoint y) =>
            x.FileHandle == y.FileHandle,
        _ => false,
    };
}
