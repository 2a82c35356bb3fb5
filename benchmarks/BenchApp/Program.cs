// The benchmark app: one plain-text endpoint. `--plain` runs Kestrel alone, without KestrelCluster (the ceiling);
// otherwise the same endpoint is served by a KestrelCluster primary and its workers. `--io-queues N` sets
// the sockets transport's IOQueueCount (a lever the harness can compare).
var plain = args.Contains("--plain");
var ioQueuesAt = Array.IndexOf(args, "--io-queues");
var ioQueues = ioQueuesAt >= 0 ? int.Parse(args[ioQueuesAt + 1], System.Globalization.CultureInfo.InvariantCulture) : (int?)null;
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args.Where((a, i) => a != "--plain" && (ioQueuesAt < 0 || (i != ioQueuesAt && i != ioQueuesAt + 1))).ToArray(),
    ContentRootPath = AppContext.BaseDirectory, // never another app's appsettings.json from the current directory
});
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("KestrelCluster", LogLevel.Information);
if (ioQueues is { } count)
{
    builder.WebHost.UseSockets(o => o.IOQueueCount = count);
}

if (!plain)
{
    builder.WebHost.UseClusterTransport();
}

var app = builder.Build();
app.MapGet("/", () => "Hello, World!");
app.Run();
