// Counts the requests a worker starts (for MaxRequestsPerWorker), with a middleware put first in the
// pipeline by a startup filter: the app's own pipeline is untouched.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace KestrelCluster.Worker;

internal sealed class WorkerRequestCounter : IStartupFilter
{
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, nextMiddleware) =>
        {
            if (!WorkerWarmUp.InProgress)
            {
                Interlocked.Increment(ref _count); // the warm-up's requests are not the primary's to count
            }

            return nextMiddleware(context);
        });
        next(app);
    };
}
