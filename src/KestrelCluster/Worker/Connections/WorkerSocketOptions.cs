// The options behind a worker's SocketConnectionContextFactory. Kestrel's own sockets transport builds them with an
// internal constructor that carries its memory pool (pinned blocks, the same pool plain Kestrel uses) and FinOnError;
// the public constructor leaves the factory on the shared array pool, which allocates and pins a buffer object per
// read. So a worker calls the internal constructor (RuntimeInternals, behind its fence), and falls back to the
// public one, with a warning, on an ASP.NET Core version that no longer has it or when the app turned it off.
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Connections;

internal static class WorkerSocketOptions
{
    private static readonly int s_defaultIOQueueCount = new SocketTransportOptions().IOQueueCount;

    /// <summary>
    /// The transport options the app configured (UseSockets), as Kestrel's sockets transport would use them, except
    /// that each worker gets its share of the cores: N workers with one IO queue per core each would oversubscribe
    /// the machine N times. An IOQueueCount the app set itself is kept.
    /// </summary>
    public static SocketConnectionFactoryOptions Create(SocketTransportOptions transport, int workerCount, ILogger logger)
    {
        var options = RuntimeInternals.TryCreateFactoryOptions(transport);
        if (options is null)
        {
            if (!RuntimeInternals.DisabledByApp)
            {
                WorkerLog.NoKestrelMemoryPool(logger);
            }

            options = new SocketConnectionFactoryOptions
            {
                WaitForDataBeforeAllocatingBuffer = transport.WaitForDataBeforeAllocatingBuffer,
                MaxReadBufferSize = transport.MaxReadBufferSize,
                MaxWriteBufferSize = transport.MaxWriteBufferSize,
                UnsafePreferInlineScheduling = transport.UnsafePreferInlineScheduling,
            };
        }

        options.IOQueueCount = transport.IOQueueCount == s_defaultIOQueueCount
            ? Math.Max(1, Environment.ProcessorCount / Math.Max(1, workerCount))
            : transport.IOQueueCount;
        return options;
    }
}
