// The newcomer's path, as a test: pack the library into a folder, create an app with `dotnet new web` somewhere
// else, add the package from that folder, add the one line, run it, and see two worker pids answer. Nothing from the
// repository's own projects reaches the app but the package. And the tester's path: a fresh `dotnet new xunit` project with
// the packed KestrelCluster.Testing, whose ClusterWebApplicationFactory replaces a service in the app's workers. And
// what every package says of itself on NuGet, with symbols whose SourceLink points at the commit they were packed from.
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

    [Fact]
    public async Task EveryPackage_SaysWhatNuGetShows_AndItsSymbolsLinkToTheSourceAtItsCommit()
    {
        // A clone of the repository whose origin is the project's home, packed as CI packs (ContinuousIntegrationBuild):
        // what a release would publish. The clone has what is committed.
        var clone = Path.Combine(_root, "clone");
        var feed = Path.Combine(_root, "feed");
        await GitAsync(_root, "clone", "--quiet", DotnetCli.RepositoryRoot, clone);
        await GitAsync(clone, "remote", "set-url", "origin", "https://github.com/kestrelcluster/kestrelcluster.git");
        var commit = (await GitAsync(clone, "rev-parse", "HEAD")).Trim();

        var suffix = $"test.{DateTime.UtcNow:yyyyMMddHHmmss}";
        foreach (var project in new[] { "KestrelCluster", "KestrelCluster.Testing", "KestrelCluster.Tool" })
        {
            await RunAsync(clone, "pack", Path.Combine(clone, "src", project), "-c", "Release", "-o", feed, $"-p:VersionSuffix={suffix}",
                "-p:ContinuousIntegrationBuild=true");
            var version = $"0.4.0-{suffix}";
            using var package = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{project}.{version}.nupkg"));
            var nuspec = System.Xml.Linq.XDocument.Load(package.GetEntry($"{project}.nuspec")!.Open()).Root!;
            string? Field(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
            var repository = nuspec.Descendants().Single(e => e.Name.LocalName == "repository");

            Assert.Equal(version, Field("version"));
            Assert.Equal("MIT", Field("license"));
            Assert.Equal("PACKAGE.md", Field("readme"));
            Assert.Contains("KestrelCluster", package.GetEntry("PACKAGE.md") is { } readme
                ? new StreamReader(readme.Open()).ReadToEnd() : "", StringComparison.Ordinal);
            Assert.Equal("https://github.com/kestrelcluster/kestrelcluster", Field("projectUrl"));
            Assert.Equal("https://github.com/kestrelcluster/kestrelcluster.git", repository.Attribute("url")?.Value);
            Assert.Equal(commit, repository.Attribute("commit")?.Value);
            Assert.False(string.IsNullOrWhiteSpace(Field("description")), $"{project}: no description");
            Assert.Contains("CHANGELOG.md", Field("releaseNotes"), StringComparison.Ordinal);
            Assert.Contains("kestrel", Field("tags"), StringComparison.Ordinal);
            Assert.Equal("KestrelCluster contributors", Field("authors"));

            // The symbols package: a portable PDB whose source paths are deterministic (/_/) and whose SourceLink maps them
            // to the files at this commit.
            using var symbols = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{project}.{version}.snupkg"));
            var pdbEntry = Assert.Single(symbols.Entries, e => e.FullName.EndsWith(".pdb", StringComparison.Ordinal));
            using var pdb = new MemoryStream();
            await pdbEntry.Open().CopyToAsync(pdb);
            pdb.Position = 0;
            using var provider = System.Reflection.Metadata.MetadataReaderProvider.FromPortablePdbStream(pdb);
            var reader = provider.GetMetadataReader();
            var sourceLinkKind = new Guid("CC110556-A091-4D38-9FEC-25AB9A351A6A");
            var sourceLink = reader.GetCustomDebugInformation(System.Reflection.Metadata.EntityHandle.ModuleDefinition)
                .Select(reader.GetCustomDebugInformation).Single(i => reader.GetGuid(i.Kind) == sourceLinkKind);
            Assert.Equal($$$"""{"documents":{"/_/*":"https://raw.githubusercontent.com/kestrelcluster/kestrelcluster/{{{commit}}}/*"}}""",
                System.Text.Encoding.UTF8.GetString(reader.GetBlobBytes(sourceLink.Value)));
            Assert.All(reader.Documents.Select(d => reader.GetString(reader.GetDocument(d).Name)),
                path => Assert.StartsWith("/_/", path, StringComparison.Ordinal));
        }
    }

    /// <summary>Runs the dotnet CLI with a package folder of the test's own; fails the test with its output if it fails.</summary>
    private Task<string> RunAsync(string workingDirectory, params string[] arguments) => RunAsync(workingDirectory, [], arguments);

    private static async Task<string> GitAsync(string workingDirectory, params string[] arguments)
    {
        var (exitCode, output, error) = await DotnetCli.RunProgramAsync("git", workingDirectory, new Dictionary<string, string>(),
            TimeSpan.FromMinutes(1), arguments);
        Assert.True(exitCode == 0, $"git {string.Join(' ', arguments)} failed ({exitCode}): {error}");
        return output;
    }

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
