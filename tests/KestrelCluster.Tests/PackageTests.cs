// The newcomer's path, as a test: pack the library into a folder, create an app with `dotnet new web` somewhere
// else, add the package from that folder, add the one line, run it, and see two worker pids answer. Nothing from the
// repository's own projects reaches the app but the package.
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

    /// <summary>Runs the dotnet CLI with a package folder of the test's own; fails the test with its output if it fails.</summary>
    private async Task RunAsync(string workingDirectory, params string[] arguments)
    {
        var environment = new Dictionary<string, string>
        {
            ["NUGET_PACKAGES"] = Path.Combine(_root, "packages"),
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
        };
        var (exitCode, output, error) = await DotnetCli.RunAsync(workingDirectory, environment, TimeSpan.FromMinutes(3), arguments);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} failed ({exitCode}):\n{output}\n{error}");
    }
}
