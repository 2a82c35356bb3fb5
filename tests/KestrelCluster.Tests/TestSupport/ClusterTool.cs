// Runs the kestrel-cluster tool (built beside the tests) as an operator would, with a given TMPDIR.
namespace KestrelCluster.Tests.TestSupport;

internal static class ClusterTool
{
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(string tempDirectory, params string[] arguments) =>
        DotnetCli.RunAsync(null, new Dictionary<string, string> { ["TMPDIR"] = tempDirectory }, TimeSpan.FromSeconds(90),
            [Path.Combine(AppContext.BaseDirectory, "kestrel-cluster.dll"), .. arguments]);
}
