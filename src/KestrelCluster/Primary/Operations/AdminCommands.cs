// What the admin socket's commands do: the same operations as the signals and IClusterManager, answered when done.
using System.Globalization;
using KestrelCluster.Primary.Supervision;
using Microsoft.Extensions.Hosting;

namespace KestrelCluster.Primary.Operations;

internal sealed class AdminCommands(WorkerPool pool, WorkerRotation rotation, ClusterStatusReport status, IHostApplicationLifetime lifetime,
    Func<Task<int>> upgradePrimary)
{
    public const string Usage = "Commands: status | restart | scale N | upgrade | stop.";

    public async Task<byte[]> ExecuteAsync(string command, CancellationToken stopping)
    {
        if (command == "status")
        {
            return status.Write();
        }

        if (pool.IsStopping)
        {
            return AdminServer.Reply(false, "The cluster is stopping.");
        }

        switch (command)
        {
            case "restart":
                await rotation.RestartAllAsync(stopping).ConfigureAwait(false);
                return AdminServer.Reply(true, string.Create(CultureInfo.InvariantCulture,
                    $"Rolling restart done: {pool.SlotCount} workers replaced, now generation {pool.Generation}."));

            case "upgrade":
                try
                {
                    var successor = await upgradePrimary().ConfigureAwait(false);
                    return AdminServer.Reply(true, string.Create(CultureInfo.InvariantCulture,
                        $"Primary upgraded: the new primary (pid {successor}) has taken over; this one drains its workers and exits."));
                }
                catch (InvalidOperationException e)
                {
                    return AdminServer.Reply(false, e.Message);
                }

            case "stop":
                // Answered first: the stop closes this socket with everything else.
                _ = Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None).ContinueWith(_ => lifetime.StopApplication(),
                    TaskScheduler.Default);
                return AdminServer.Reply(true, "Stopping gracefully (as on SIGTERM).");
        }

        if (AdminServer.ParseScale(command) is { } workers)
        {
            if (workers is < 1 or > ClusterOptions.MaxWorkers)
            {
                return AdminServer.Reply(false, $"scale takes 1 to {ClusterOptions.MaxWorkers} workers, not {workers}.");
            }

            var before = pool.SlotCount;
            await rotation.ScaleAsync(workers, stopping).ConfigureAwait(false);
            return AdminServer.Reply(true, string.Create(CultureInfo.InvariantCulture, $"Scaled from {before} to {workers} workers."));
        }

        return AdminServer.Reply(false, $"Unknown command '{command}'. {Usage}");
    }
}
