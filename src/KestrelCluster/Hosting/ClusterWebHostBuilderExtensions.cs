// UseClusterTransport: the one line. The same Program.cs runs as the primary or as a worker; the role is
// decided by the environment the primary gives its workers.
using KestrelCluster;
using KestrelCluster.Hosting;
using KestrelCluster.Interop;
using KestrelCluster.Messaging;
using KestrelCluster.Primary;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Primary.Operations;
using KestrelCluster.Primary.Upgrade;
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;
using KestrelCluster.Worker.Lifecycle;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>
/// <see cref="IWebHostBuilder"/> extension methods for the KestrelCluster transport.
/// </summary>
public static class ClusterWebHostBuilderExtensions
{
    /// <summary>
    /// Runs the app as a cluster: this process (the primary) binds Kestrel's endpoints and accepts every
    /// connection, and hands each one to one of <see cref="ClusterOptions.Workers"/> worker processes running
    /// this same app, where the whole ASP.NET Core pipeline serves it. Options are bound from the
    /// <c>Cluster</c> configuration section.
    /// </summary>
    /// <param name="hostBuilder">The <see cref="IWebHostBuilder"/> to configure.</param>
    /// <returns>The <see cref="IWebHostBuilder"/>.</returns>
    public static IWebHostBuilder UseClusterTransport(this IWebHostBuilder hostBuilder)
    {
        ArgumentNullException.ThrowIfNull(hostBuilder);
        return hostBuilder.UseClusterTransport(static _ => { });
    }

    /// <summary>
    /// Runs the app as a cluster, as <see cref="UseClusterTransport(IWebHostBuilder)"/> does, with options
    /// bound from the <c>Cluster</c> configuration section and then configured by <paramref name="configureOptions"/>.
    /// </summary>
    /// <param name="hostBuilder">The <see cref="IWebHostBuilder"/> to configure.</param>
    /// <param name="configureOptions">A callback to configure the <see cref="ClusterOptions"/>.</param>
    /// <returns>The <see cref="IWebHostBuilder"/>.</returns>
    public static IWebHostBuilder UseClusterTransport(this IWebHostBuilder hostBuilder, Action<ClusterOptions> configureOptions)
    {
        ArgumentNullException.ThrowIfNull(hostBuilder);
        ArgumentNullException.ThrowIfNull(configureOptions);

        WorkerIdentity? worker;
        try
        {
            worker = WorkerIdentity.Current;
        }
        catch (ControlProtocolMismatchException e)
        {
            // This worker must not run under that primary, and nothing in the app is wrong: one line, no stack trace. The
            // primary's log shows it (it writes its workers' output) and the exit code.
            Console.Error.WriteLine(e.Message);
            Environment.Exit(ControlProtocol.MismatchExitCode);
            throw; // not reached
        }

        if (worker is not null)
        {
            WatchParent(worker);
            SocketActivation.AdoptFrom(worker.PrimaryProcessId);
            if (worker.TestFactory is { } factory)
            {
                TestFactoryHook.Install(factory);
            }
        }
        else
        {
            ServiceManagerNotifier.TakeSocketFromEnvironment();
            if (UpgradeInvitation.Current is { } invitation)
            {
                SocketActivation.AdoptFrom(invitation.FromProcessId); // started by a primary to take over from it (SIGUSR2)
            }
        }

        if (worker?.Urls is { } urls)
        {
            // The worker's default addresses are the primary's real ones (port 0 resolved). Endpoints the app
            // configures itself (Kestrel:Endpoints, Listen) take precedence, as they did in the primary, unless
            // the primary preferred its hosting URLs (WebApplicationFactory.UseKestrel(port) does that).
            hostBuilder.UseSetting(WebHostDefaults.ServerUrlsKey, urls);
            if (worker.PreferHostingUrls)
            {
                hostBuilder.UseSetting(WebHostDefaults.PreferHostingUrlsKey, "true");
            }
        }

        return hostBuilder.ConfigureServices((context, services) =>
        {
            var section = context.Configuration.GetSection(ClusterOptions.SectionName);
            services.AddOptions<ClusterOptions>()
                .Configure(options => ClusterOptionsBinder.Bind(section, options))
                .Configure(configureOptions)
                .ValidateOnStart();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ClusterOptions>, ClusterOptionsValidator>());

            if (worker is null)
            {
                AddPrimary(services);
                if (ClusterHostExtensions.WillBePrimary(services))
                {
                    PrimaryHostedServices.Register(services); // the app's own hosted services run in the workers only
                }
            }
            else
            {
                AddWorker(services, worker);
            }

            services.AddSingleton<IClusterContext>(sp => sp.GetRequiredService<ClusterContext>());
            services.AddSingleton<ClusterMessenger>();
            services.AddSingleton<IClusterMessenger>(sp => sp.GetRequiredService<ClusterMessenger>());
            services.AddSingleton<IMultiplexedConnectionListenerFactory, QuicRefusal>();
        });
    }

    private static void AddPrimary(IServiceCollection services)
    {
        services.AddSingleton(sp => ClusterContext.ForPrimary(sp.GetRequiredService<IOptions<ClusterOptions>>()));
        services.AddSingleton<PrimaryListenerTable>();
        if (UpgradeInvitation.Current is { } invitation)
        {
            services.AddSingleton(sp => new PrimaryTakeover(invitation, sp.GetRequiredService<ILoggerFactory>()
                .CreateLogger("KestrelCluster.Primary")));
        }

        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<ClusterOptions>>().Value;
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("KestrelCluster.Primary.HandoffDispatcher");
            return new HandoffDispatcher(sp.GetRequiredService<IConnectionScheduler>(), logger, options.AcceptThreads,
                ConnectionFdBudget.ForThisProcess(options.Workers));
        });

        // A scheduler the app registers itself (before or after this call) wins over the built-in policy.
        services.TryAddSingleton(sp
            => ClusterOptionsBinder.CreateScheduler(sp.GetRequiredService<IOptions<ClusterOptions>>().Value.Scheduling));
        services.AddSingleton<WorkerLauncher>();
        services.AddMetrics();
        services.AddSingleton<ClusterSupervisor>();
        services.AddSingleton<IClusterManager>(sp => sp.GetRequiredService<ClusterSupervisor>());
        services.AddHostedService(sp => sp.GetRequiredService<ClusterSupervisor>());

        // Added, not TryAdded: Kestrel uses the last registered factory that can bind an endpoint, and the
        // sockets transport is TryAdded, so this one takes TCP and Unix endpoints whenever clustering is on.
        services.AddSingleton<IConnectionListenerFactory, PrimaryConnectionListenerFactory>();
        services.AddOptions<ConsoleLoggerOptions>().PostConfigure<ClusterContext>((o, context) => UseFormatter(o, context));
        services.AddOptions<SimpleConsoleFormatterOptions>().PostConfigure<ClusterContext>((o, context) =>
        {
            if (context.Role == ClusterRole.Primary)
            {
                // A primary that took over from another (an upgrade) names itself: both write to the same log for a while.
                Prefix(o, UpgradeInvitation.Current is null ? "primary" : $"primary {Environment.ProcessId}");
            }
        });
    }

    private static void AddWorker(IServiceCollection services, WorkerIdentity worker)
    {
        services.AddSingleton(worker);
        services.AddSingleton(ClusterContext.ForWorker(worker));
        services.AddSingleton<WorkerControlChannel>();
        services.AddMetrics();
        services.AddSingleton<WorkerMetrics>();
        services.AddSingleton<WorkerWarmUp>();
        services.AddHostedService<WorkerReadiness>();
        services.AddSingleton<WorkerRequestCounter>();
        services.AddSingleton<WorkerDrainNotice>();
        services.AddSingleton<IStartupFilter, WorkerRequestHook>();
        services.AddHostedService<WorkerHeartbeatService>();
        services.AddSingleton<IConnectionListenerFactory, WorkerConnectionListenerFactory>();

        // One startup line per worker (WorkerReadiness) instead of the host's banner and Kestrel's "Now listening on"
        // lines, which the primary has printed already: added last, so this rule wins over the app's own
        // Logging:LogLevel:Microsoft.Hosting.Lifetime; warnings and errors from the host still show.
        services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        services.PostConfigure<LoggerFilterOptions>(o =>
            o.Rules.Add(new LoggerFilterRule(providerName: null, "Microsoft.Hosting.Lifetime", LogLevel.Warning, filter: null)));
        // Last: it wraps every rule, the one above too. Only with a warm-up: otherwise no log call pays for its check.
        services.AddOptions<LoggerFilterOptions>().PostConfigure<IOptions<ClusterOptions>>((o, cluster) =>
        {
            if (cluster.Value.WarmUpPath is not null)
            {
                WarmUpLogFilter.Apply(o);
            }
        });

        // The primary writes every line a worker writes, attributed to it (WorkerOutput): no prefix of the worker's own,
        // and the primary's formatter (UseSystemd() picks systemd's in the primary only: its parent is systemd).
        services.AddOptions<ConsoleLoggerOptions>().PostConfigure<ClusterContext>((o, context) =>
        {
            if (worker.ConsoleFormatter is { } formatter)
            {
                o.FormatterName = formatter;
            }

            UseFormatter(o, context);
        });
    }

    /// <summary>
    /// Linux's parent-death signal backs up the control channel's EOF: SIGTERM (a graceful stop) when the primary
    /// dies. If the primary died before this ran, the parent is already someone else: stop now.
    /// </summary>
    private static void WatchParent(WorkerIdentity worker)
    {
        if (Libc.SetParentDeathSignal(15) && Libc.ParentProcessId != worker.PrimaryProcessId)
        {
            throw new InvalidOperationException($"Worker {worker.WorkerId}: its primary (pid {worker.PrimaryProcessId}) is already gone.");
        }
    }

    private static void UseFormatter(ConsoleLoggerOptions options, ClusterContext context)
    {
        // Without a formatter name the console logger takes its options from the obsolete ConsoleLoggerOptions
        // properties and ignores SimpleConsoleFormatterOptions; name the default formatter so the prefix shows.
        if (context.Role != ClusterRole.Standalone)
        {
            options.FormatterName ??= ConsoleFormatterNames.Simple;
        }
    }

    private static void Prefix(ConsoleFormatterOptions options, string who) =>
        options.TimestampFormat = $"'[{who}]' {options.TimestampFormat}";
}
