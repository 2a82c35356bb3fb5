// What a worker's death costs its slot: a worker that ran and served is replaced at once, however often it is
// killed; only deaths before a worker proved it runs feed the backoff and the crash-loop breaker; and a fault in
// the supervision itself is logged and the slot supervised again.
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class RestartPolicyTests
{
    [Fact]
    public async Task KilledAfterServing_SixTimesOnOneSlot_ReplacedAtOnceAndNeverCrashLooped()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?>
        {
            ["Cluster__Workers"] = "2",
            ["Logging__LogLevel__KestrelCluster"] = "Information",
        }, port: 0);
        await factory.StartAsync(workers: 2);
        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));

        var sinceLastKill = System.Diagnostics.Stopwatch.StartNew();
        for (var kill = 0; kill < 6; kill++)
        {
            var victim = await ServingWorkerInSlotZeroAsync(factory, endpoint, TimeSpan.FromSeconds(30));
            var pause = TimeSpan.FromSeconds(1.5) - sinceLastKill.Elapsed;
            if (pause > TimeSpan.Zero)
            {
                await Task.Delay(pause); // the pace of the kills is the scenario itself, not a wait for a condition
            }

            TestProcesses.Signal(victim.ProcessId, TestProcesses.SIGKILL);
            sinceLastKill.Restart();
            await Wait.UntilAsync(() => victim.HasExited, TimeSpan.FromSeconds(10), $"worker {victim.Id} has exited");
        }

        await ServingWorkerInSlotZeroAsync(factory, endpoint, TimeSpan.FromSeconds(2) - sinceLastKill.Elapsed);
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("crash-looped", StringComparison.Ordinal));
        Assert.Equal(6, factory.Logs.Entries.Count(e => e.Message.Contains("killed by SIGKILL; starting a replacement in 0 ms", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task SupervisionFault_WhenAWorkerExits_IsLoggedWithWorkerAndSlotAndTheSlotServesAgain()
    {
        await using var factory = new ClusterAppFactory(new Dictionary<string, string?> { ["Cluster__Workers"] = "1" }, port: 0);
        await factory.StartAsync(workers: 1);
        var endpoint = HttpProbe.EndPointOf(Assert.Single(factory.Addresses));
        var first = factory.Supervisor.WorkerProcesses.Single();
        var faults = 0;
        factory.Supervisor.Slots.OnWorkerExited = _ =>
        {
            if (Interlocked.Increment(ref faults) == 1)
            {
                throw new InvalidOperationException("injected supervision fault");
            }
        };

        TestProcesses.Signal(first.ProcessId, TestProcesses.SIGKILL);

        var replacement = await ServingWorkerInSlotZeroAsync(factory, endpoint, TimeSpan.FromSeconds(30));
        Assert.NotEqual(first.Id, replacement.Id);
        var report = Assert.Single(factory.Logs.Entries, e => e.Message.StartsWith("Supervising worker", StringComparison.Ordinal));
        Assert.Equal($"Supervising worker {first.Id} (slot 0) failed; the slot is supervised again.", report.Message);
        Assert.Equal("injected supervision fault", report.Exception?.Message);
    }

    /// <summary>Waits until a ready worker in slot 0 has served a request on a new connection; returns it.</summary>
    private static async Task<WorkerProcess> ServingWorkerInSlotZeroAsync(ClusterAppFactory factory, System.Net.IPEndPoint endpoint, TimeSpan timeout)
    {
        WorkerProcess? serving = null;
        await Wait.UntilAsync(async () =>
        {
            if (factory.Supervisor.WorkerProcesses.FirstOrDefault(w => w.Slot == 0 && w.IsReady && !w.HasExited) is not { } worker)
            {
                return false;
            }

            if (worker.Handoffs == 0)
            {
                await HttpProbe.NewConnectionRequestAsync(endpoint); // round-robin: one of two requests reaches slot 0
                return false;
            }

            serving = worker;
            return true;
        }, timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero, "a worker in slot 0 is ready and has served");
        return serving!;
    }
}
