// A deploy under a running primary: every worker a rolling restart (SIGHUP) starts runs what is on disk now — a
// release behind a symlink swapped to the next one (/srv/app/current -> releases/N), or files replaced in place.
// The two "builds" are copies of the test app's build output, each with its own version.txt, which the app reads
// when it starts and answers at /version.
using System.Diagnostics;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed class DeployTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("kc-deploy-").FullName;

    [Fact]
    public async Task RollingRestart_AfterASymlinkSwap_ThenAfterAnInPlaceDeploy_EveryNewWorkerRunsWhatIsDeployed()
    {
        var release1 = Release("1");
        var release2 = Release("2");
        var current = Path.Combine(_root, "current");
        Directory.CreateSymbolicLink(current, release1);

        // Started as a service would be: from the deployment's root, through the symlink, with a relative path.
        using var app = AppProcess.StartAt(Path.Combine("current", AppProcess.TestApp + ".dll"), _root, AppProcess.FreePortEnvironment(2));
        var endpoint = await app.WaitUntilServingAsync(2);
        Assert.Equal(["1"], await VersionsAsync(endpoint));

        // Symlink swap, then a rolling restart: the new workers run release 2.
        await RunAsync("ln", "-sfn", release2, current);
        var before = app.Workers();
        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGHUP);
        await app.WaitForOutputAsync("Rolling restart (generation 1) done.", TimeSpan.FromSeconds(60));
        Assert.Equal(["2"], await VersionsAsync(endpoint));
        Assert.Empty(app.Workers().Intersect(before));

        // In place: the files of the current release replaced; the next rolling restart runs them.
        await File.WriteAllTextAsync(Path.Combine(release2, "version.txt"), "3\n");
        TestProcesses.Signal(app.ProcessId, TestProcesses.SIGHUP);
        await app.WaitForOutputAsync("Rolling restart (generation 2) done.", TimeSpan.FromSeconds(60));
        Assert.Equal(["3"], await VersionsAsync(endpoint));
        Assert.True(ProcFs.IsAlive(app.ProcessId), "the same primary serves throughout");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A copy of the test app's build output in releases/<paramref name="version"/>, with that version.txt.</summary>
    private string Release(string version)
    {
        var source = Path.Combine(DotnetCli.RepositoryRoot, "tests", AppProcess.TestApp, "bin", Debug(), "net10.0");
        var target = Directory.CreateDirectory(Path.Combine(_root, "releases", version)).FullName;
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }

        File.WriteAllText(Path.Combine(target, "version.txt"), version + "\n");
        return target;
    }

    /// <summary>The build configuration these tests run in (the test app is built beside them, in the same one).</summary>
    private static string Debug() => Path.GetFileName(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd('/'))!);

    /// <summary>The versions 20 new connections are answered with (each may reach any worker).</summary>
    private static async Task<string[]> VersionsAsync(System.Net.EndPoint endpoint)
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => HttpProbe.NewConnectionRequestAsync(endpoint, "/version")));
        return [.. answers.Select(a => a[(a.IndexOf("version ", StringComparison.Ordinal) + 8)..].Split(' ')[0]).Distinct().Order()];
    }

    private static async Task RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { UseShellExecute = false })!;
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, process.ExitCode);
    }
}
