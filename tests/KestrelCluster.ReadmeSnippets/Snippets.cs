// The README's other C# blocks, each between #region and #endregion exactly as the README shows it (indentation aside),
// inside just enough code to compile. Never run.
using KestrelCluster;

internal static class Snippets
{
    public static void Options(WebApplicationBuilder builder)
    {
        #region options
        builder.WebHost.UseClusterTransport(o =>
        {
            o.Workers = 4;
            o.Scheduling = SchedulingPolicy.LeastConnections;
            o.MaxRequestsPerWorker = 100_000;
            o.MaxRequestsJitter = 10_000;
        });
        #endregion
    }

    public static void Scheduler(WebApplicationBuilder builder)
    {
        #region scheduler-registration
        builder.Services.AddSingleton<IConnectionScheduler, FirstSlotFirst>();
        #endregion
    }

    public static void RunOnce(WebApplicationBuilder builder)
    {
        #region run-once
        builder.Services.AddPrimaryHostedService<NightlyCleanup>();   // the primary only: once across the cluster
        builder.Services.AddSlotHostedService<CacheWarmer>(0);        // the worker in slot 0 only (its replacement runs it again)
        builder.Services.AddHostedServiceEverywhere<MetricsBridge>(); // every process, the primary too (rare)
        #endregion
    }

    public static async Task StartupGuard(WebApplicationBuilder builder)
    {
        #region startup-guard
        if (!builder.IsClusterPrimary())
        {
            builder.Services.AddSingleton(LookupTable.Load("countries.csv"));   // built in each worker, not in the primary
        }

        var app = builder.Build();
        if (!app.IsClusterPrimary())
        {
            await app.Services.GetRequiredService<ProductCache>().FillAsync();
        }
        #endregion
    }

    public static async Task Messages(WebApplication app, Cache cache, byte[] bytes, int workerId)
    {
        #region messages
        var messenger = app.Services.GetRequiredService<IClusterMessenger>();

        // every process: handle messages (off the control channel's thread)
        messenger.Subscribe(message =>
        {
            if (message.GetString() == "cache:clear") cache.Clear();   // message.FromWorkerId: null = from the primary
            return ValueTask.CompletedTask;
        });

        await messenger.BroadcastAsync("cache:clear");           // from anywhere: to every worker (from a worker, the primary relays it)
        await messenger.SendToPrimaryAsync(bytes);               // worker → primary
        await messenger.SendToWorkerAsync(workerId, bytes);      // primary → one worker
        await messenger.BroadcastJsonAsync(new Invalidate("user:42"));   // and message.Deserialize<Invalidate>()
        #endregion
    }

    public static void Status(WebApplication app)
    {
        #region status
        app.MapClusterStatus();                              // GET /cluster/status
        app.MapClusterStatus("/ops/cluster").RequireAuthorization("ops").RequireHost("localhost:5000");
        #endregion
    }

    public static void Health(WebApplicationBuilder builder, WebApplication app)
    {
        #region health
        builder.Services.AddHealthChecks().AddClusterHealthCheck();   // minimumReadyWorkers: 1, name: "cluster"
        app.MapHealthChecks("/healthz");
        #endregion
    }

    public static void Systemd(WebApplicationBuilder builder)
    {
        #region systemd
        builder.Services.AddSystemd();                                     // journald format, Type=notify lifetime
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.UseSystemd()); // the activated sockets (LISTEN_FDS)
        #endregion
    }

    public static async Task Manager(WebApplication app)
    {
        #region manager
        var manager = app.Services.GetRequiredService<IClusterManager>();
        await manager.RestartWorkersAsync();   // rolling restart, zero downtime
        await manager.ScaleAsync(8);           // 8 workers
        var successor = await manager.UpgradePrimaryAsync();   // a new primary takes over (as SIGUSR2); its pid
        foreach (var w in manager.GetWorkers())   // id, slot, pid, state, generation, restarts, start time, connections, requests, memory
            Console.WriteLine($"worker {w.Id} slot {w.SlotIndex} pid {w.ProcessId} {w.State} gen {w.Generation} requests {w.Requests}");
        #endregion
    }

    public static async Task NewConnections()
    {
        #region new-connections
        using var factory = new FakeGreeterFactory();
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.ConnectionClose = true;    // a new connection per request: round-robin over the workers

        var servedBy = new HashSet<string>();
        for (var i = 0; i < 20; i++)
        {
            servedBy.Add(await client.GetStringAsync("/whoami"));   // each answer names the worker's pid
        }
        #endregion
    }
}

#region scheduler
sealed class FirstSlotFirst : IConnectionScheduler
{
    // candidates: the workers that can take this connection now (ready, serving its endpoint,
    // under MaxHandoffsInFlight), ordered by slot; each has WorkerId, SlotIndex, HandoffsInFlight, OpenConnections.
    public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates)
        => candidates[0].OpenConnections < 100 ? 0 : candidates.Length - 1;   // -1 keeps it waiting
}
#endregion

internal sealed record Invalidate(string Key);

internal sealed class Cache
{
    public void Clear()
    {
    }
}

internal sealed class NightlyCleanup : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.CompletedTask;
}

internal sealed class CacheWarmer : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.CompletedTask;
}

internal sealed class MetricsBridge : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.CompletedTask;
}

internal sealed class LookupTable
{
    public static LookupTable Load(string path) => new();
}

internal sealed class ProductCache
{
    public Task FillAsync() => Task.CompletedTask;
}
