// The newcomer's path, as a test: pack the library into a folder, create an app with `dotnet new web` somewhere
// else, add the package from that folder, add the one line, run it, and see two worker pids answer. Nothing from the
// repository's own projects reaches the app but the package. And the tester's path: a fresh `dotnet new xunit` project with
// the packed KestrelCluster.Testing, whose ClusterWebApplicationFactory replaces a service in the app's workers.
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PackageTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kc-newcomer-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task NewWebApp_WithThePackedLibrary_ServesFromTwoWorkers()
    {
        var repository = DotnetCli.RepositoryRoot;
        var feed = Path.Combine(_root, "feed");
        var app = Path.Combine(_root, "Shop");

        // A version of its own, and a package folder of its own: no NuGet cache can hand back an older build.
        var suffix = $"test.{DateTime.UtcNow:yyyyMMddHHmmss}";
        await RunAsync(repository, "pack", Path.Combine(repository, "src", "KestrelCluster"), "-c", "Release", "-o", feed,
            $"-p:VersionSuffix={suffix}");
        Assert.Single(Directory.GetFiles(feed, $"KestrelCluster.*-{suffix}.nupkg"));

        await RunAsync(_root, "new", "web", "-n", "Shop", "-o", app);
        await RunAsync(app, "new", "nugetconfig");
        await RunAsync(app, "nuget", "add", "source", feed, "--name", "local", "--configfile", "nuget.config");
        await RunAsync(app, "add", "package", "KestrelCluster", "--prerelease");
        var program = Path.Combine(app, "Program.cs");
        var code = await File.ReadAllTextAsync(program);
        code = "using KestrelCluster;\n\n" + code
            .Replace("var builder = WebApplication.CreateBuilder(args);", "var builder = WebApplication.CreateBuilder(args);\n" +
                "builder.WebHost.UseClusterTransport();", StringComparison.Ordinal)
            .Replace("app.MapGet(\"/\", () => \"Hello World!\");",
                "app.MapGet(\"/\", (IClusterContext cluster) => $\"worker {cluster.WorkerId} (pid {Environment.ProcessId})\\n\");",
                StringComparison.Ordinal);
        Assert.Contains("UseClusterTransport", code, StringComparison.Ordinal);
        Assert.Contains("IClusterContext", code, StringComparison.Ordinal);
        await File.WriteAllTextAsync(program, code);
        await RunAsync(app, "build", "-c", "Release");

        var environment = AppProcess.FreePortEnvironment(workers: 2);
        environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        using var shop = AppProcess.Start(Path.Combine(app, "bin", "Release", "net10.0", "Shop"), environment);
        var endpoint = await shop.WaitUntilServingAsync(workers: 2);
        var servedBy = new HashSet<int>();
        for (var i = 0; i < 6; i++)
        {
            servedBy.Add(HttpProbe.ServedBy(await HttpProbe.NewConnectionRequestAsync(endpoint)));
        }

        Assert.Equal(2, servedBy.Count);
        Assert.Equal(shop.Workers().ToHashSet(), servedBy);
    }

    [Fact]
    public async Task NewTestProject_WithThePackedTestingPackage_ReplacesAServiceInEveryWorker()
    {
        var repository = DotnetCli.RepositoryRoot;
        var feed = Path.Combine(_root, "feed");
        var app = Path.Combine(_root, "Shop");
        var tests = Path.Combine(_root, "Shop.Tests");

        var suffix = $"test.{DateTime.UtcNow:yyyyMMddHHmmss}";
        foreach (var project in new[] { "KestrelCluster", "KestrelCluster.Testing" })
        {
            await RunAsync(repository, "pack", Path.Combine(repository, "src", project), "-c", "Release", "-o", feed,
                $"-p:VersionSuffix={suffix}");
        }

        await RunAsync(_root, "new", "web", "-n", "Shop", "-o", app);
        await RunAsync(_root, "new", "nugetconfig");
        await RunAsync(_root, "nuget", "add", "source", feed, "--name", "local", "--configfile", "nuget.config");
        await RunAsync(app, "add", "package", "KestrelCluster", "--prerelease");
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), """
            using KestrelCluster;

            var builder = WebApplication.CreateBuilder(args);
            builder.WebHost.UseClusterTransport();
            builder.Services.AddSingleton<IGreeter, Greeter>();
            var app = builder.Build();
            app.MapGet("/greet", (IGreeter greeter) => $"{greeter.Greet()} from pid {Environment.ProcessId}");
            app.Run();

            public partial class Program;

            public interface IGreeter
            {
                string Greet();
            }

            internal sealed class Greeter : IGreeter
            {
                public string Greet() => "real";
            }
            """);

        await RunAsync(_root, "new", "xunit", "-n", "Shop.Tests", "-o", tests);
        await RunAsync(tests, "add", "package", "KestrelCluster.Testing", "--prerelease");
        await RunAsync(tests, "add", "reference", Path.Combine(app, "Shop.csproj"));
        await File.WriteAllTextAsync(Path.Combine(tests, "UnitTest1.cs"), """
            using KestrelCluster.Testing;
            using Microsoft.AspNetCore.Hosting;
            using Microsoft.AspNetCore.TestHost;
            using Microsoft.Extensions.DependencyInjection;

            public sealed class FakeGreeterFactory : ClusterWebApplicationFactory<Program>
            {
                protected override void ConfigureWebHost(IWebHostBuilder builder) =>
                    builder.ConfigureTestServices(services => services.AddSingleton<IGreeter, FakeGreeter>());
            }

            public sealed class FakeGreeter : IGreeter
            {
                public string Greet() => "fake";
            }

            public class GreetTests
            {
                [Fact]
                public async Task EveryWorkerGreetsWithTheFake()
                {
                    using var factory = new FakeGreeterFactory();
                    using var client = factory.CreateClient();
                    client.DefaultRequestHeaders.ConnectionClose = true;
                    var answers = new List<string>();
                    for (var i = 0; i < 10; i++)
                    {
                        answers.Add(await client.GetStringAsync("/greet"));
                    }

                    Assert.All(answers, a => Assert.StartsWith("fake from pid ", a));
                    Assert.Equal(2, answers.Distinct().Count());
                }
            }
            """);

        // Two workers whatever the core count; the test's own output says what failed if anything does.
        var environment = new Dictionary<string, string> { ["Cluster__Workers"] = "2" };
        var output = await RunAsync(tests, environment, "test", "-c", "Release");
        Assert.Contains("Passed:     1", output, StringComparison.Ordinal);
    }

    /// <summary>Runs the dotnet CLI with a package folder of the test's own; fails the test with its output if it fails.</summary>
    private Task<string> RunAsync(string workingDirectory, params string[] arguments) => RunAsync(workingDirectory, [], arguments);

    private async Task<string> RunAsync(string workingDirectory, Dictionary<string, string> more, params string[] arguments)
    {
        var environment = new Dictionary<string, string>(more)
        {
            ["NUGET_PACKAGES"] = Path.Combine(_root, "packages"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };
        var (exitCode, output, error) = await DotnetCli.RunAsync(workingDirectory, environment, TimeSpan.FromMinutes(3), arguments);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} failed ({exitCode}):\n{output}\n{error}");
        return output;
    }
}
