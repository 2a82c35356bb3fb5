// The listeners a worker serves (it registered each endpoint its Kestrel binds), and in Scheduling=ReusePort its part in
// who accepts on its slot's sockets: the worker while it is ready and not retiring, the primary otherwise (ReusePortGroup).
namespace KestrelCluster.Primary.Connections;

internal sealed partial class WorkerChannel
{
    private volatile int[] _listenerIds = [];
    private int _serving; // 1 while it counts as serving its slot's reuseport sockets: ready, not retiring, open

    /// <summary>The listeners this worker serves (registered by it).</summary>
    public IReadOnlySet<int> ListenerIds => new HashSet<int>(_listenerIds);

    public void ClaimListener(int listenerId) => _listenerIds = [.. _listenerIds, listenerId];

    public void ReleaseListener(int listenerId) => _listenerIds = [.. _listenerIds.Where(id => id != listenerId)];

    /// <summary>Scheduling=ReusePort: the primary accepts on a slot's sockets exactly while no worker of the slot serves them.</summary>
    private void Serving(bool serving)
    {
        if (Interlocked.Exchange(ref _serving, serving ? 1 : 0) != (serving ? 1 : 0))
        {
            _listeners.OnWorkerServing(_listenerIds, SlotIndex, serving);
        }
    }
}
