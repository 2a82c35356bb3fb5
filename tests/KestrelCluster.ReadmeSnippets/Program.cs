using KestrelCluster;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseClusterTransport();          // that's all
var app = builder.Build();
app.MapGet("/", (IClusterContext cluster) => $"worker {cluster.WorkerId}");
app.Run();

/// <summary>The snippets' app (its Program is what the WebApplicationFactory snippets test).</summary>
public partial class Program;
