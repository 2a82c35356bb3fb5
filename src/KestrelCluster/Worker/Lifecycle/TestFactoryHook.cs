// In a worker started under a test host: run the test's factory's ConfigureWebHost on this worker's host, the way
// WebApplicationFactory does it in the primary. The hook is the one WebApplicationFactory itself uses: the hosting
// DiagnosticListener's "HostBuilding" event, raised inside the app's builder.Build(), after Main has registered its own
// services — so a ConfigureTestServices replacement wins here exactly as it does in the primary, and UseEnvironment and
// UseSetting apply before the host is built. The factory type is created with its public parameterless constructor
// (ClusterWebApplicationFactory checks for one before the primary starts) and never started: only ConfigureWebHost runs.
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Worker.Lifecycle;

internal sealed class TestFactoryHook : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>
{
    private const string HostingListenerName = "Microsoft.Extensions.Hosting";

    private readonly TestFactoryReference _factory;
    private IDisposable? _allListeners;
    private IDisposable? _hosting;
    private int _applied;

    private const string TestHostOnly = "Only a test host names a factory. It loads the app's assembly with reflection " +
        "(WebApplicationFactory), so the app it starts as workers was never trimmed or compiled ahead of time.";

    private TestFactoryHook(TestFactoryReference factory) => _factory = factory;

    /// <summary>Arranges for the factory's ConfigureWebHost to run when this process's host is built.</summary>
    public static void Install(string replay)
    {
        var hook = new TestFactoryHook(TestFactoryReference.Parse(replay));
        hook._allListeners = DiagnosticListener.AllListeners.Subscribe(hook);
    }

    public void OnNext(DiagnosticListener value)
    {
        if (value.Name == HostingListenerName)
        {
            _hosting = value.Subscribe(this);
        }
    }

    public void OnNext(KeyValuePair<string, object?> value)
    {
        if (value.Key != "HostBuilding" || value.Value is not IHostBuilder hostBuilder || Interlocked.Exchange(ref _applied, 1) == 1)
        {
            return;
        }

        _hosting?.Dispose();
        _allListeners?.Dispose();
        var (factory, configureWebHost) = CreateFactory();
        hostBuilder.ConfigureWebHost(webHostBuilder =>
        {
            try
            {
                configureWebHost.Invoke(factory, [webHostBuilder]);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw new InvalidOperationException($"{_factory.TypeName}.ConfigureWebHost threw in this worker.", e.InnerException);
            }
        });
    }

    public void OnCompleted()
    {
    }

    public void OnError(Exception error)
    {
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TestHostOnly)]
    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = TestHostOnly)]
    [UnconditionalSuppressMessage("Trimming", "IL2075", Justification = TestHostOnly)]
    private (object Factory, MethodInfo ConfigureWebHost) CreateFactory()
    {
        try
        {
            // The test's output folder holds the app, the test assembly and everything it references; LoadFrom resolves the
            // factory's dependencies (Microsoft.AspNetCore.Mvc.Testing, KestrelCluster.Testing) from that folder.
            var type = Assembly.LoadFrom(_factory.AssemblyPath).GetType(_factory.TypeName, throwOnError: true)!;
            var method = type.GetMethod("ConfigureWebHost", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic,
                [typeof(IWebHostBuilder)]) ?? throw new MissingMethodException(_factory.TypeName, "ConfigureWebHost");
            AppContext.SetData(TestFactoryReference.WorkerSwitch, true);
            return (Activator.CreateInstance(type)!, method);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var cause = e is TargetInvocationException { InnerException: { } inner } ? inner : e;
            throw new InvalidOperationException($"This worker cannot run {_factory.TypeName}.ConfigureWebHost (from " +
                $"{_factory.AssemblyPath}): {cause.Message}", cause);
        }
    }
}
