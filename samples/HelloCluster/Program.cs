// The smallest real cluster: `dotnet run` starts a primary and one worker per core; every request is served
// by a worker, which says who it is.
using System.Net.WebSockets;
using KestrelCluster;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseClusterTransport();

// Run as a systemd service (Type=notify, journald's log format) and take systemd's activated sockets, with
// clustering on: the primary accepts on them and hands connections to the workers (docs/deploying.md: systemd).
builder.Services.AddSystemd();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.UseSystemd());

// Healthy when every worker is ready, Degraded when some are not, Unhealthy while the cluster stops: GET /healthz.
builder.Services.AddHealthChecks().AddClusterHealthCheck();

var app = builder.Build();
app.UseWebSockets();

// The whole cluster as the primary sees it (pids, states, restarts, last exits, load): GET /cluster/status. A real app
// protects it: .RequireAuthorization(), .RequireHost("localhost").
app.MapClusterStatus();
app.MapHealthChecks("/healthz");

// Who served this request: worker id, slot and process id.
app.MapGet("/", (IClusterContext cluster, HttpContext http) =>
    (cluster.Role == ClusterRole.Worker
        ? $"Hello from worker {cluster.WorkerId} (slot {cluster.SlotIndex}, pid {Environment.ProcessId})"
        : $"Hello from the only process (pid {Environment.ProcessId}: not clustered)")
    + $", serving {http.Request.Protocol} for {http.Connection.RemoteIpAddress}:{http.Connection.RemotePort}\n");

// A per-worker cache, cleared in every worker at once by a cluster broadcast: GET /cache, POST /cache/clear.
var cache = new WorkerCache();

// Startup work the app serves from (filling a cache, loading a lookup table or a model) belongs where requests are
// served: the primary runs this file only to learn the endpoints, then accepts connections and supervises. (The app's
// own hosted services already start in the workers only.)
if (!app.IsClusterPrimary())
{
    _ = cache.Value;
}
app.Services.GetRequiredService<IClusterMessenger>().Subscribe(message =>
{
    if (message.GetString() == "cache:clear")
    {
        cache.Clear();
    }

    return ValueTask.CompletedTask;
});
app.MapGet("/cache", (IClusterContext cluster) =>
    $"worker {cluster.WorkerId} (pid {Environment.ProcessId}): value computed at {cache.Value:O}, cache cleared {cache.Clears} times\n");
app.MapPost("/cache/clear", async (IClusterMessenger messenger) =>
{
    await messenger.BroadcastAsync("cache:clear");
    return "Asked every worker to clear its cache.\n";
});

// How long connections took to get from the primary's accept to this worker's Kestrel (the
// kestrelcluster.handoff.duration histogram of the "KestrelCluster" meter): GET /handoff.
using var handoffs = new HandoffLatency();
app.MapGet("/handoff", (IClusterContext cluster) =>
    $"worker {cluster.WorkerId} (pid {Environment.ProcessId}): {handoffs.Describe()}\n");

// A slow request, handy to watch a graceful shutdown drain: /slow?ms=3000 (at most 60 s).
app.MapGet("/slow", async (int? ms, IClusterContext cluster, ILogger<Program> logger, CancellationToken aborted) =>
{
    var delay = Math.Clamp(ms ?? 1000, 0, 60_000);
    SampleLog.SlowRequest(logger, delay);
    await Task.Delay(delay, aborted);
    return $"Slept {delay} ms in worker {cluster.WorkerId} (pid {Environment.ProcessId})\n";
});

// Echoes the request body, to show bodies travel through the handoff.
app.MapPost("/echo", async (HttpRequest request) =>
{
    using var reader = new StreamReader(request.Body);
    return await reader.ReadToEndAsync();
});

// A WebSocket echo: every text message comes back prefixed with the worker id.
app.Map("/ws", async (HttpContext http, IClusterContext cluster) =>
{
    if (!http.WebSockets.IsWebSocketRequest)
    {
        http.Response.StatusCode = StatusCodes.Status400BadRequest;
        return;
    }

    using var socket = await http.WebSockets.AcceptWebSocketAsync();
    var buffer = new byte[4096];
    while (true)
    {
        var received = await socket.ReceiveAsync(buffer, http.RequestAborted);
        if (received.MessageType == WebSocketMessageType.Close)
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, http.RequestAborted);
            return;
        }

        var reply = System.Text.Encoding.UTF8.GetBytes($"worker {cluster.WorkerId}: ").Concat(buffer[..received.Count]).ToArray();
        await socket.SendAsync(reply, WebSocketMessageType.Text, endOfMessage: true, http.RequestAborted);
    }
});

app.Run();

/// <summary>The sample's entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;

/// <summary>Something expensive to compute, kept per worker process until a broadcast clears it.</summary>
internal sealed class WorkerCache
{
    private Lazy<DateTimeOffset> _value = new(() => DateTimeOffset.UtcNow);
    private int _clears;

    public DateTimeOffset Value => _value.Value;

    public int Clears => _clears;

    public void Clear()
    {
        _value = new Lazy<DateTimeOffset>(() => DateTimeOffset.UtcNow);
        Interlocked.Increment(ref _clears);
    }
}

/// <summary>
/// Listens to this worker's kestrelcluster.handoff.duration measurements (what dotnet-counters or OpenTelemetry's
/// AddMeter("KestrelCluster") would export) and keeps the latest 10,000 for a percentile summary.
/// </summary>
internal sealed class HandoffLatency : IDisposable
{
    private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
    private readonly double[] _seconds = new double[10_000];
    private long _count;

    public HandoffLatency()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "KestrelCluster" && instrument.Name == "kestrelcluster.handoff.duration")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
            _seconds[(Interlocked.Increment(ref _count) - 1) % _seconds.Length] = seconds);
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    public string Describe()
    {
        var count = Interlocked.Read(ref _count);
        if (count == 0)
        {
            return "no connections handed over yet (the primary serves none itself: are you calling the primary's port?)";
        }

        var sorted = _seconds.AsSpan(0, (int)Math.Min(count, _seconds.Length)).ToArray();
        Array.Sort(sorted);
        static string Micro(double seconds) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{seconds * 1e6:0.0} µs");
        return $"{count} connections handed over; accept → Kestrel p50 {Micro(sorted[sorted.Length / 2])}, p99 {Micro(sorted[(int)(sorted.Length * 0.99)])}, max {Micro(sorted[^1])} (last {sorted.Length})";
    }
}

internal static partial class SampleLog
{
    [LoggerMessage(1, LogLevel.Information, "Slow request: sleeping {Delay} ms.", EventName = "SlowRequest")]
    public static partial void SlowRequest(ILogger logger, int delay);
}
