// The benchmark app: one plain-text endpoint. `--plain` runs Kestrel alone, without KestrelCluster (the ceiling);
// otherwise the same endpoint is served by a KestrelCluster primary and its workers.
var plain = args.Contains("--plain");
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args.Where(a => a != "--plain").ToArray(),
    ContentRootPath = AppContext.BaseDirectory, // never another app's appsettings.json from the current directory
});
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("KestrelCluster", LogLevel.Information);
if (!plain)
{
    builder.WebHost.UseClusterTransport();
}

var app = builder.Build();
app.MapGet("/", () => "Hello, World!");
app.Run();
