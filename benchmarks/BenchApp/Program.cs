// The benchmark app: one plain-text endpoint. `--plain` runs Kestrel alone, without KestrelCluster (the ceiling);
// otherwise the same endpoint is served by a KestrelCluster primary and its workers. `--io-queues N` sets
// the sockets transport's IOQueueCount (a lever the harness can compare). `--sink` closes every connection as soon
// as Kestrel has it, before any request: in a cluster the workers then only acknowledge and close, which measures what
// the primary's accept and handoff can carry (the harness's primary mode).
var plain = args.Contains("--plain");
var sink = args.Contains("--sink");
var ioQueuesAt = Array.IndexOf(args, "--io-queues");
var ioQueues = ioQueuesAt >= 0 ? int.Parse(args[ioQueuesAt + 1], System.Globalization.CultureInfo.InvariantCulture) : (int?)null;
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args.Where((a, i) => a != "--plain" && a != "--sink" && (ioQueuesAt < 0 || (i != ioQueuesAt && i != ioQueuesAt + 1))).ToArray(),
    ContentRootPath = AppContext.BaseDirectory, // never another app's appsettings.json from the current directory
});
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("KestrelCluster", LogLevel.Information);
if (ioQueues is { } count)
{
    builder.WebHost.UseSockets(o => o.IOQueueCount = count);
}

if (sink)
{
    // Returning at once ends the connection: Kestrel closes it gracefully (an Abort would cost an exception per connection).
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Use(_ => _ => Task.CompletedTask)));
}

if (!plain)
{
    builder.WebHost.UseClusterTransport();
}

var app = builder.Build();
app.MapGet("/", () => "Hello, World!");
app.Run();
