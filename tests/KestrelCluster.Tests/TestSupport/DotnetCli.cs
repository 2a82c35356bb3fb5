// The dotnet CLI and the repository, for tests that run what a user runs: the tool, `dotnet pack`, `dotnet new`.
using System.Diagnostics;

namespace KestrelCluster.Tests.TestSupport;

internal static class DotnetCli
{
    /// <summary>The dotnet host running the tests (else the one on PATH).</summary>
    public static string HostPath { get; } =
        Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";

    /// <summary>The repository's root folder (where KestrelCluster.sln is), above the test's output folder.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>
    /// Runs <c>dotnet</c> with <paramref name="arguments"/> and waits for it, at most <paramref name="timeout"/>; the
    /// process is ended by id whatever happens. The app configuration a cluster fixture put in this process is not passed on.
    /// </summary>
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(string? workingDirectory,
        IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments) =>
        RunProgramAsync(HostPath, workingDirectory, environment, timeout, arguments);

    /// <summary>The same for another program on PATH (git).</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunProgramAsync(string program, string? workingDirectory,
        IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null)
        {
            startInfo.WorkingDirectory = workingDirectory;
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var name in startInfo.Environment.Keys.Where(AppProcess.IsAppConfiguration).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            startInfo.Environment[name] = value;
        }

        using var process = Process.Start(startInfo)!;
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(timeout);
            await process.WaitForExitAsync(deadline.Token);
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            TestProcesses.KillIfAlive(process.Id);
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "KestrelCluster.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository (KestrelCluster.sln) is not above the test's directory.");
    }
}
