// Counts the requests a worker starts (for MaxRequestsPerWorker); WorkerRequestHook calls it for each request.
namespace KestrelCluster.Worker.Lifecycle;

internal sealed class WorkerRequestCounter
{
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public void RequestStarted()
    {
        if (!WorkerWarmUp.InProgress)
        {
            Interlocked.Increment(ref _count); // the warm-up's requests are not the primary's to count
        }
    }
}
