// What a worker does for every request before the app sees it — count it, and say `Connection: close` while it is told
// to stop — in one middleware put first in the pipeline by a startup filter: the app's own pipeline is untouched.
using KestrelCluster.Worker.Connections;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace KestrelCluster.Worker.Lifecycle;

internal sealed class WorkerRequestHook(WorkerRequestCounter counter, WorkerDrainNotice drainNotice) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, nextMiddleware) =>
        {
            counter.RequestStarted();
            drainNotice.Apply(context);
            return nextMiddleware(context);
        });
        next(app);
    };
}
