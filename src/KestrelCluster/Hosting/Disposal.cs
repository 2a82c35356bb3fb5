// Disposing what the container would have disposed, had it created it: for the hosted services this layer creates itself.
namespace KestrelCluster.Hosting;

internal static class Disposal
{
    /// <summary>Disposes <paramref name="service"/> asynchronously if it can be, else synchronously, else not at all.</summary>
    public static async ValueTask DisposeAsync(object? service)
    {
        switch (service)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }
}
