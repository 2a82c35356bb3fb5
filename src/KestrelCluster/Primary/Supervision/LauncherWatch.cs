// A primary started by `dotnet run` or `dotnet watch` stops when that launcher exits. Killing `dotnet run` (kill -HUP
// sent to the wrong pid, a closed IDE terminal, a CI step that times out) would otherwise leave the primary and its
// workers orphaned, serving the port with nobody watching. Any other parent (a shell, systemd, a container runtime,
// nohup) is not followed: a production primary outlives whoever started it, as every server does.
//
// The parent is polled (getppid changes when it dies and the primary is re-parented) rather than asked to signal
// (PR_SET_PDEATHSIG): that signal fires when the launcher's *thread* that forked exits, which `dotnet run` does not
// promise to keep.
using KestrelCluster.Interop;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal static class LauncherWatch
{
    private static readonly TimeSpan s_period = TimeSpan.FromMilliseconds(500);

    /// <summary>"dotnet run" or "dotnet watch" when <paramref name="commandLine"/> (argv) is one of them, else null.</summary>
    internal static string? LauncherName(IReadOnlyList<string> commandLine)
    {
        // The dotnet host (argv[0], or argv[1] when it is a script run by its interpreter), then its command:
        // dotnet run …, dotnet watch …, and dotnet watch's own host (dotnet …/dotnet-watch.dll …).
        var host = commandLine.Take(2).ToList().FindIndex(a => Path.GetFileName(a) == "dotnet");
        if (host < 0)
        {
            return null;
        }

        return commandLine.Skip(host + 1).FirstOrDefault(a => !a.StartsWith('-')) switch
        {
            "run" => "dotnet run",
            "watch" => "dotnet watch",
            { } path when Path.GetFileName(path) == "dotnet-watch.dll" => "dotnet watch",
            _ => null,
        };
    }

    /// <summary>"dotnet run" or "dotnet watch" when this process's parent is one of them, else null.</summary>
    public static string? Launcher => LauncherName(CommandLineOf(Libc.ParentProcessId));

    /// <summary>Watches the parent when it is a launcher; calls <paramref name="onGone"/> once if it exits.</summary>
    public static async Task RunAsync(ILogger logger, Action onGone, CancellationToken stopping)
    {
        var parent = Libc.ParentProcessId;
        if (LauncherName(CommandLineOf(parent)) is not { } launcher)
        {
            return;
        }

        SupervisionLog.FollowingLauncher(logger, launcher, parent);
        using var timer = new PeriodicTimer(s_period);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                if (Libc.ParentProcessId != parent)
                {
                    SupervisionLog.LauncherGone(logger, launcher, parent);
                    onGone();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static string[] CommandLineOf(int processId)
    {
        try
        {
            return File.ReadAllText($"/proc/{processId}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
