// A cluster app for failure tests. Configuration (environment variables reach primary and workers):
//   TestApp__FailStartup=true        every worker throws while starting (the primary starts normally)
//   TestApp__StartupDelayMs=5000     every worker takes this long to start
using KestrelCluster;

namespace KestrelCluster.TestApp;

internal static class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.WebHost.UseClusterTransport();
        builder.Services.AddHostedService<WorkerStartup>();

        var app = builder.Build();
        app.MapGet("/", (IClusterContext cluster) => $"worker {cluster.WorkerId} (pid {Environment.ProcessId})\n");
        app.Run();
    }
}

internal sealed class WorkerStartup(IClusterContext cluster, IConfiguration configuration) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (cluster.Role != ClusterRole.Worker)
        {
            return;
        }

        await Task.Delay(configuration.GetValue("TestApp:StartupDelayMs", 0), cancellationToken);
        if (configuration.GetValue("TestApp:FailStartup", false))
        {
            throw new InvalidOperationException("TestApp: failing startup on purpose.");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
