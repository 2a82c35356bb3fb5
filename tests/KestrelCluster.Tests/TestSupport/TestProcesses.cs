// Starting and ending processes in tests: only by id, only the ones the test started (or its primary started).
using System.Diagnostics;

namespace KestrelCluster.Tests.TestSupport;

internal static class TestProcesses
{
    public static void KillIfAlive(int pid)
    {
        if (!ProcFs.IsAlive(pid))
        {
            return;
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
            process.WaitForExit(5_000);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            // Gone in between.
        }
    }

    /// <summary>Kills <paramref name="pid"/> and every process below it (found first, so none is re-parented away unseen).</summary>
    public static void KillTree(int pid)
    {
        var below = ProcFs.DescendantsOf(pid);
        KillIfAlive(pid);
        foreach (var child in below)
        {
            KillIfAlive(child);
        }
    }

    public static void Signal(int pid, int signal)
    {
        if (sys_kill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed.");
        }
    }

    /// <summary>Signals every process of the group led by <paramref name="leader"/>, as Ctrl+C in a terminal does.</summary>
    public static void SignalGroup(int leader, int signal)
    {
        if (sys_kill(-leader, signal) != 0)
        {
            throw new InvalidOperationException($"kill(-{leader}, {signal}) failed.");
        }
    }

    /// <summary>
    /// SIGSTOP, then waits until every thread of <paramref name="pid"/> has stopped: kill() returns before the signal is
    /// delivered, and a thread still running could take one more connection.
    /// </summary>
    public static async Task StopAsync(int pid)
    {
        Signal(pid, SIGSTOP);
        await Wait.UntilAsync(() => ProcFs.IsStopped(pid), TimeSpan.FromSeconds(10), $"process {pid} is stopped");
    }

    public const int SIGHUP = 1;
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGUSR2 = 12;
    public const int SIGTERM = 15;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;
    public const int SIGTTIN = 21;
    public const int SIGTTOU = 22;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int sys_kill(int pid, int sig);
}
