// Holds the app's start until WebApplicationFactory has imposed its port. With an app on minimal hosting, the app's own
// Main starts the host (the factory's deferred host leaves it "in charge of calling start") while the factory, on the
// test's thread, sets IServerAddressesFeature between Build and Start: on a busy machine Kestrel could start first, and
// the factory then throws "Addresses cannot be modified after the server has started". Startup filters run inside the
// web host's start, before the server starts, so waiting here for the factory's PreferHostingUrls closes the race
// without changing what the factory does. Registered in the primary only (CreateHost runs there).
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace KestrelCluster.Testing;

internal sealed class ImposedPortGate(IServer server) : IStartupFilter
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(30);

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next)
    {
        if (server.Features.Get<IServerAddressesFeature>() is { } addresses)
        {
            var deadline = DateTime.UtcNow + s_patience;
            while (!addresses.PreferHostingUrls && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5); // on the app's start thread, before Kestrel listens: a wait for the factory's write
            }
        }

        return next;
    }
}
