// The options a worker gives Kestrel's SocketConnectionContextFactory: Kestrel's own memory pool (not the shared
// array pool the public constructor would give) and the worker's share of the IO queues.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Worker.Connections;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Tests;

public sealed class WorkerSocketOptionsTests
{
    [Fact]
    public async Task Options_FromTheAppsTransportOptions_ConnectionsUseKestrelsPinnedMemoryPool()
    {
        await using var app = WebApplication.CreateSlimBuilder().Build(); // Kestrel and its sockets transport, as a worker has them
        var transport = app.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value;
        using var factory = new SocketConnectionContextFactory(WorkerSocketOptions.Create(transport, workerCount: 2, NullLogger.Instance), NullLogger.Instance);

        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        var connection = factory.Create(await listener.AcceptAsync());
        try
        {
            var pool = connection.Features.Get<IMemoryPoolFeature>()?.MemoryPool;
            Assert.NotNull(pool);
            if (RuntimeInternals.DisabledByApp)
            {
                Assert.NotEqual("PinnedBlockMemoryPool", pool.GetType().Name); // the public constructor's pool: the fallback
            }
            else
            {
                Assert.Equal("PinnedBlockMemoryPool", pool.GetType().Name);
            }
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    [Fact]
    public void Options_IOQueueCountNotSetByTheApp_EachWorkerGetsItsShareOfTheCores()
    {
        var options = WorkerSocketOptions.Create(new SocketTransportOptions(), workerCount: 2, NullLogger.Instance);

        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), options.IOQueueCount);
    }

    [Fact]
    public void Options_IOQueueCountSetByTheApp_Kept()
    {
        var transport = new SocketTransportOptions { IOQueueCount = 7, MaxReadBufferSize = 12345 };

        var options = WorkerSocketOptions.Create(transport, workerCount: 2, NullLogger.Instance);

        Assert.Equal(7, options.IOQueueCount);
        Assert.Equal(12345, options.MaxReadBufferSize);
    }
}
