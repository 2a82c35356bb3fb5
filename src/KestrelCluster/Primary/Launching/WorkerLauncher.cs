// How to start "the same app again": the command that re-launches this application as a worker, whichever
// way it was started — the apphost (dotnet run, a published app), `dotnet app.dll`, or inside a test host
// (WebApplicationFactory), where the running executable is the test runner and the app must be found by name.
//
// The command is the one that was typed (/proc/self/cmdline), in the directory the primary was started from as its
// shell named it ($PWD), not the paths the .NET host resolved: Environment.ProcessPath and AppContext.BaseDirectory
// follow symlinks, so a worker started from them after a symlink swap (/srv/app/current -> releases/N, then SIGHUP)
// would run the old release. Re-executing the typed path lets the kernel resolve it at every start: each new worker
// runs what is deployed now, in place or behind a symlink.
using System.Diagnostics;
using System.Reflection;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Primary.Launching;

internal sealed class WorkerLauncher
{
    private readonly IHostEnvironment _environment;
    private readonly IConfiguration _configuration;
    private readonly Lazy<(string FileName, string[] Arguments)> _command;

    public WorkerLauncher(IHostEnvironment environment, IConfiguration configuration)
    {
        _environment = environment;
        _configuration = configuration;
        _command = new(ResolveCommand);
    }

    /// <summary>The executable and arguments that start a worker (also shown in the startup log).</summary>
    public (string FileName, string[] Arguments) Command => _command.Value;

    /// <summary>
    /// Whether another program hosts the app (a test runner, through WebApplicationFactory): workers then run the app's
    /// own Main, and what that host added to the primary only (its ConfigureWebHost) does not reach them.
    /// </summary>
    public bool HostedByAnotherProgram { get; private set; }

    /// <summary>
    /// Under a test host, the ClusterWebApplicationFactory that started this primary: each worker runs its ConfigureWebHost
    /// too. Known once <see cref="Command"/> has been resolved.
    /// </summary>
    public TestFactoryReference? TestFactory { get; private set; }

    /// <summary>
    /// <see cref="Command"/> in <see cref="WorkingDirectory"/>, with this process's environment: how a worker starts, and a
    /// new primary in an upgrade.
    /// </summary>
    public ProcessStartInfo CreateCommandStartInfo()
    {
        var (fileName, arguments) = Command;
        var startInfo = new ProcessStartInfo(fileName) { UseShellExecute = false, WorkingDirectory = WorkingDirectory };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        return startInfo;
    }

    public ProcessStartInfo CreateStartInfo(WorkerIdentity identity)
    {
        var startInfo = CreateCommandStartInfo();

        // The primary owns the console: it writes the workers' lines whole and attributed (WorkerOutput), and
        // workers read no terminal (their stdin is an empty pipe), so none of them changes the terminal's modes.
        startInfo.RedirectStandardOutput = true;
        startInfo.RedirectStandardError = true;
        startInfo.RedirectStandardInput = true;

        foreach (var (name, value) in identity.ToEnvironment())
        {
            startInfo.Environment[name] = value;
        }

        // Through a pipe a worker's console logger would drop its colours; keep them when the primary writes to a terminal.
        if (!Console.IsOutputRedirected && Environment.GetEnvironmentVariable(AnsiRedirectionVariable) is null)
        {
            startInfo.Environment[AnsiRedirectionVariable] = "1";
        }

        startInfo.Environment[ResourceAttributesVariable] = ResourceAttributes(identity,
            Environment.GetEnvironmentVariable(ResourceAttributesVariable));

        // Several workers share the cores: a thread pool whose idle threads spin (sched_yield) before they sleep
        // takes CPU from the other workers' real work. With 2 workers on 2 cores, an A/B of 3 rounds gave lower CPU
        // per request in every round; full benchmark runs put the two within noise (benchmarks/README.md). A value
        // the app sets itself (runtimeconfig.json, or the variable in the primary's environment) is kept.
        if (AppContext.GetData(SpinLimitSetting) is null && Environment.GetEnvironmentVariable(SpinLimitVariable) is null)
        {
            startInfo.Environment[SpinLimitVariable] = "0";
        }

        return startInfo;
    }

    internal const string ResourceAttributesVariable = "OTEL_RESOURCE_ATTRIBUTES";
    internal const string AnsiRedirectionVariable = "DOTNET_SYSTEM_CONSOLE_ALLOW_ANSI_COLOR_REDIRECTION";

    /// <summary>
    /// The app's own OpenTelemetry resource attributes, then the worker's: <c>service.instance.id</c> (host and slot: a
    /// replacement continues its slot's series) unless the app set it, <c>kestrelcluster.worker.id</c> and
    /// <c>kestrelcluster.worker.slot</c>. Any OpenTelemetry exporter in the app then tells the processes apart.
    /// </summary>
    internal static string ResourceAttributes(WorkerIdentity identity, string? existing)
    {
        var attributes = new List<string>();
        if (!string.IsNullOrWhiteSpace(existing))
        {
            attributes.Add(existing.Trim().TrimEnd(','));
        }

        if (existing is null || !existing.Split(',').Any(a => a.Split('=')[0].Trim() == "service.instance.id"))
        {
            attributes.Add($"service.instance.id={Uri.EscapeDataString(Environment.MachineName)}/{identity.SlotIndex}");
        }

        attributes.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"kestrelcluster.worker.id={identity.WorkerId},kestrelcluster.worker.slot={identity.SlotIndex}"));
        return string.Join(',', attributes);
    }

    internal const string SpinLimitSetting = "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit";
    internal const string SpinLimitVariable = "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit";

    /// <summary>
    /// Where workers start: the primary's working directory as its shell named it ($PWD, when that is the same directory),
    /// so that a relative path in the typed command goes through the same symlinks.
    /// </summary>
    internal static string WorkingDirectory { get; } =
        Environment.GetEnvironmentVariable("PWD") is { } pwd && Path.IsPathFullyQualified(pwd)
            && Libc.RealPath(pwd) is { } real && real == Libc.RealPath(Environment.CurrentDirectory)
            ? pwd
            : Environment.CurrentDirectory;

    private (string, string[]) ResolveCommand()
    {
        var processPath = Environment.ProcessPath ?? throw new InvalidOperationException("The path of the running executable is " +
            "unknown, so workers cannot be started.");
        var originalArguments = Environment.GetCommandLineArgs().Skip(1).ToArray();
        var entryAssembly = Assembly.GetEntryAssembly();

        if (entryAssembly is not null && string.Equals(entryAssembly.GetName().Name, _environment.ApplicationName,
            StringComparison.Ordinal))
        {
            // The app itself is running: re-run the same command line, as typed when it can be read.
            // (Assembly.Location is empty in single-file and native AOT apps; those run as the apphost anyway.)
            if (TypedCommand(originalArguments) is { } typed)
            {
                return IsDotnetHost(processPath)
                    ? (processPath, [.. typed.HostArguments, .. originalArguments]) // dotnet [host options] app.dll …
                    : (typed.Program, originalArguments);                          // the apphost
            }

            return IsDotnetHost(processPath)
                ? (processPath, [AssemblyPath(_environment.ApplicationName), .. originalArguments])  // dotnet app.dll …
                : (processPath, originalArguments);                      // the apphost: dotnet run, a published or AOT app
        }

        HostedByAnotherProgram = true;
        TestFactory = TestFactoryReference.FromConfiguration(_configuration);

        // A host (a test runner) loaded the app: start the app's own assembly. The build copies its
        // runtimeconfig and deps files beside it, and `dotnet exec` picks them up from there. The host's
        // command-line settings become explicit arguments, which WebApplication.CreateBuilder(args) reads.
        var appPath = AssemblyPath(_environment.ApplicationName);
        var runtimeConfig = Path.ChangeExtension(appPath, ".runtimeconfig.json");
        if (!File.Exists(runtimeConfig))
        {
            throw new InvalidOperationException($"Cannot start workers: {runtimeConfig} is missing, so {appPath} cannot run as its " +
                $"own process.");
        }

        var dotnet = IsDotnetHost(processPath) ? processPath : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return (dotnet, ["exec", appPath,
            "--contentRoot", _environment.ContentRootPath,
            "--environment", _environment.EnvironmentName,
            "--applicationName", _environment.ApplicationName]);
    }

    /// <summary>
    /// This process's command line as it was typed (/proc/self/cmdline): the program, and what came between it and the
    /// app's own arguments (for `dotnet app.dll`: the host's options and the app's path). Null when it cannot be read or
    /// does not end with the app's arguments.
    /// </summary>
    internal static (string Program, string[] HostArguments)? TypedCommand(string[] appArguments)
    {
        string[] argv;
        try
        {
            argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        if (argv.Length < 1 + appArguments.Length || argv[0].Length == 0
            || !argv.AsSpan(argv.Length - appArguments.Length).SequenceEqual(appArguments))
        {
            return null;
        }

        // A relative program (./app) is made absolute against the directory workers start in; a bare name stays, found
        // through PATH as it was.
        var program = argv[0].Contains('/', StringComparison.Ordinal) ? Path.GetFullPath(argv[0], WorkingDirectory) : argv[0];
        return (program, argv[1..(argv.Length - appArguments.Length)]);
    }

    /// <summary>The app's own assembly: beside the running one (`dotnet app.dll`), or in the test's output folder.</summary>
    private static string AssemblyPath(string applicationName) => Path.Combine(AppContext.BaseDirectory, applicationName + ".dll");

    private static bool IsDotnetHost(string processPath) =>
        Path.GetFileNameWithoutExtension(processPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
}
