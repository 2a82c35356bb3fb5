// A cluster app for failure tests. Configuration (environment variables reach primary and workers):
//   TestApp__FailStartup=true        every worker throws while starting (the primary starts normally)
//   TestApp__StartupDelayMs=5000     every worker takes this long to start
//   TestApp__FailStartupIfExists=/tmp/f   workers started while this file exists throw while starting (a broken deploy)
//   TestApp__RecordFile=/tmp/x       the primary-only and slot-0-only hosted services append "<kind> <pid>" lines here,
//                                    and the primary appends "message <worker id> <text>" for each message a worker sends it
// GET /cluster/status and /healthz: MapClusterStatus and the cluster health check; GET /env?name=X: the serving worker's
//   environment variable X.
// GET /log?lines=N: N log entries and N raw Console.WriteLine lines; GET /crash: an unhandled exception on a thread of
//   its own ends the serving worker (the runtime's crash report on stderr).
// GET /tell-primary?text=hi: the worker serving it sends "hi" to the primary; with &count=N, N messages "hi-0" …
//   "hi-(N-1)", all sent before any is awaited (the order test).
// GET /greet: IGreeter's greeting (a test's factory replaces the service), TestApp:Greeting, the environment name, TestApp:Flavour
//   and the pid: what a ClusterWebApplicationFactory's ConfigureWebHost changed, seen from the worker that serves it.
// GET /version: the first line of version.txt beside the app's assembly, read when the process started ("none" without
//   one), and the pid: which deployed build a process runs (the deploy tests copy the app into releases with their own).
// GET /warm-ups: how many requests with the header KestrelCluster-Warm-Up this process has served (Cluster:WarmUpPath).
// GET /starve?ms=3000: every thread of the serving worker's pool blocks that long (sync-over-async gone wrong) and the
//                      pool may add none: shows the primary's starvation warning.
//   TestApp__StartupStateMb=500     the app's own hosted service (AddHostedService) holds this many MiB it built at start;
//                                    with TestApp:RecordFile it appends "app-service <role> <pid>" there when it starts;
//   TestApp__StartupStateEverywhere=true  that service is added with AddHostedServiceEverywhere: the primary too
//   TestApp__MeterProbe=true         a hosted service in every process (AddHostedServiceEverywhere) listens to the
//                                    KestrelCluster meter and appends "meter <role> <pid> kestrelcluster.workers=<n>" to
//                                    TestApp:RecordFile once it has read it
// `--stranger <control socket> <frame in hex>`: no app at all — a child process of the primary that connects to its
//   control socket and sends one frame, as a buggy or hostile child would; prints "hung up" once the primary drops it.
namespace KestrelCluster.TestApp;

/// <summary>The test app's entry point (public: WebApplicationFactory&lt;Program&gt; names it).</summary>
public sealed class Program
{
    private Program()
    {
    }

    public static void Main(string[] args)
    {
        if (args is ["--stranger", var controlSocket, var frame])
        {
            Environment.Exit(Stranger.Run(controlSocket, Convert.FromHexString(frame)));
        }

        var builder = WebApplication.CreateBuilder(args);
        builder.WebHost.UseClusterTransport();
        builder.Services.AddHostedService<WorkerStartup>();
        if (builder.Configuration.GetValue("TestApp:StartupStateEverywhere", false))
        {
            builder.Services.AddHostedServiceEverywhere<StartupState>(); // what every hosted service did before 0.4.0-preview.3
        }
        else
        {
            builder.Services.AddHostedService<StartupState>();
        }
        if (builder.Configuration.GetValue("TestApp:MeterProbe", false))
        {
            builder.Services.AddHostedServiceEverywhere<MeterProbe>();
        }

        builder.Services.AddPrimaryHostedService<RecordStart>();
        builder.Services.AddSlotHostedService<RecordSlotZeroStart>(slotIndex: 0);
        builder.Services.AddHealthChecks().AddClusterHealthCheck();
        builder.Services.AddSingleton<IGreeter, Greeter>();

        var app = builder.Build();
        var versionFile = Path.Combine(AppContext.BaseDirectory, "version.txt");
        var version = File.Exists(versionFile) ? File.ReadLines(versionFile).First() : "none";
        app.MapGet("/version", () => $"version {version} (pid {Environment.ProcessId})\n");
        var warmUps = 0L;
        app.Use((context, next) =>
        {
            if (context.Request.Headers.ContainsKey("KestrelCluster-Warm-Up"))
            {
                Interlocked.Increment(ref warmUps);
            }

            return next(context);
        });
        app.MapGet("/warm-ups", () => $"{Interlocked.Read(ref warmUps)} warm-up requests (pid {Environment.ProcessId})\n");
        app.MapGet("/", (IClusterContext cluster) => $"worker {cluster.WorkerId} (pid {Environment.ProcessId})\n");
        app.MapClusterStatus();
        app.MapHealthChecks("/healthz");
        app.MapGet("/log", (int lines, ILogger<WorkerStartup> logger) =>
        {
            for (var i = 0; i < lines; i++)
            {
                TestAppLog.Line(logger, i, Environment.ProcessId);
                Console.WriteLine($"raw line {i} from pid {Environment.ProcessId}, long enough to be torn if lines were not whole: " +
                    new string('x', 200));
            }

            return $"logged {lines} lines (pid {Environment.ProcessId})\n";
        });
        app.MapGet("/crash", (HttpContext http) =>
        {
            // After the answer is out (a crash before it would leave the caller without the pid it needs).
            http.Response.OnCompleted(() =>
            {
                new Thread(() =>
                {
                    Thread.Sleep(100);
                    throw new InvalidOperationException($"boom in pid {Environment.ProcessId}");
                }).Start();
                return Task.CompletedTask;
            });
            return $"crashing (pid {Environment.ProcessId})\n";
        });
        app.MapGet("/greet", (IGreeter greeter, IConfiguration configuration, IHostEnvironment environment) =>
            $"{greeter.Greet()}; greeting={configuration["TestApp:Greeting"]}; environment={environment.EnvironmentName}; " +
            $"flavour={configuration["TestApp:Flavour"]}; pid={Environment.ProcessId}\n");
        app.MapGet("/env", (string name) => $"{Environment.GetEnvironmentVariable(name)}\n(pid {Environment.ProcessId})\n");
        app.MapGet("/tell-primary", async (string text, int? count, IClusterMessenger messenger, IClusterContext cluster) =>
        {
            if (count is { } n)
            {
                var sends = Enumerable.Range(0, n).Select(i => messenger.SendToPrimaryAsync(System.Text.Encoding.UTF8.GetBytes($"{text}-{i}")).AsTask());
                await Task.WhenAll([.. sends]);
            }
            else
            {
                await messenger.SendToPrimaryAsync(System.Text.Encoding.UTF8.GetBytes(text));
            }

            return $"worker {cluster.WorkerId} (pid {Environment.ProcessId}) sent it\n";
        });

        app.MapGet("/sleep", async (int ms) =>
        {
            await Task.Delay(ms); // a slow answer that holds no thread (a long warm-up, say)
            return $"slept {ms} ms (pid {Environment.ProcessId})\n";
        });
        app.MapGet("/starve", (int ms) =>
        {
            // The fault this app injects: every pool thread blocked for ms, and no new thread to take over (the limit
            // is set to the threads the pool has), so everything queued meanwhile, the heartbeat included, waits.
            var threads = Math.Max(Environment.ProcessorCount, ThreadPool.ThreadCount);
            ThreadPool.GetMaxThreads(out _, out var completionPortThreads);
            ThreadPool.SetMaxThreads(threads, completionPortThreads);
            for (var i = 0; i < threads; i++)
            {
                ThreadPool.QueueUserWorkItem(_ => Thread.Sleep(ms));
            }

            return $"pid {Environment.ProcessId} blocks its {threads} pool threads for {ms} ms\n";
        });

        var cluster = app.Services.GetRequiredService<IClusterContext>();
        if (cluster.Role == ClusterRole.Primary && app.Configuration["TestApp:RecordFile"] is { Length: > 0 } record)
        {
            app.Services.GetRequiredService<IClusterMessenger>().Subscribe(message =>
            {
                File.AppendAllText(record, $"message {message.FromWorkerId} {message.GetString()}\n");
                return ValueTask.CompletedTask;
            });
        }
        app.Run();
    }
}

/// <summary>What /greet says first; tests replace it.</summary>
public interface IGreeter
{
    string Greet();
}

internal sealed class Greeter : IGreeter
{
    public string Greet() => "real greeter";
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
        if (configuration.GetValue("TestApp:FailStartup", false)
            || (configuration["TestApp:FailStartupIfExists"] is { Length: > 0 } flag && File.Exists(flag)))
        {
            throw new InvalidOperationException("TestApp: failing startup on purpose.");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Records that it ran, and where: the test checks it ran exactly once in the cluster.</summary>
internal class RecordStart(IConfiguration configuration) : IHostedService
{
    protected virtual string Kind => "primary-only";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (configuration["TestApp:RecordFile"] is { Length: > 0 } path)
        {
            File.AppendAllText(path, $"{Kind} {Environment.ProcessId}\n");
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

internal sealed class RecordSlotZeroStart(IConfiguration configuration) : RecordStart(configuration)
{
    protected override string Kind => "slot-0-only";
}

internal static partial class TestAppLog
{
    [LoggerMessage(1, LogLevel.Information, "Log line {Index} from pid {ProcessId}.", EventName = "Line")]
    public static partial void Line(ILogger logger, int index, int processId);
}
