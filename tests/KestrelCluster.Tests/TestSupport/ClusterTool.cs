// Runs the kestrel-cluster tool (built beside the tests) as an operator would, with a given TMPDIR.
using System.Diagnostics;

namespace KestrelCluster.Tests.TestSupport;

internal static class ClusterTool
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string tempDirectory, params string[] arguments)
    {
        var dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var startInfo = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kestrel-cluster.dll"));
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment["TMPDIR"] = tempDirectory;
        using var process = Process.Start(startInfo)!;
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            TestProcesses.KillIfAlive(process.Id);
        }
    }
}
