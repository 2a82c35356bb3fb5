// The signals an operator sends the primary to steer the cluster, as Gunicorn and Puma take them: SIGHUP a rolling
// restart, SIGTTIN one worker more, SIGTTOU one fewer, SIGUSR2 a primary upgrade (nginx's and Unicorn's signal). Each
// runs in the background; a failure is logged, none is lost.
// (The stop signals are the supervisor's: they mark the cluster as stopping at once.)
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Supervision;

internal sealed class OperatorSignals(WorkerPool pool, WorkerRotation rotation, Func<Task> upgradePrimary, ILogger logger)
    : IDisposable
{
    private const int SIGTTIN = 21;
    private const int SIGTTOU = 22;
    private const int SIGUSR2 = 12;

    private readonly List<PosixSignalRegistration> _registrations = [];

    /// <summary>Takes SIGHUP, SIGTTIN, SIGTTOU and SIGUSR2 from now on, and logs the pid to send them to.</summary>
    public void Register()
    {
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal));
        SupervisionLog.PrimarySignals(logger, Environment.ProcessId); // the pid to signal: not `dotnet run`'s
        _registrations.Add(PosixSignalRegistration.Create((PosixSignal)SIGTTIN, OnSignal));
        _registrations.Add(PosixSignalRegistration.Create((PosixSignal)SIGTTOU, OnSignal));
        _registrations.Add(PosixSignalRegistration.Create((PosixSignal)SIGUSR2, OnSignal));
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // SIGHUP would otherwise end the process
        if (pool.IsStopping)
        {
            return;
        }

        var (name, operation, run) = (int)context.Signal switch
        {
            SIGTTIN => ("SIGTTIN", "adding a worker", () => rotation.ScaleAsync(Math.Min(ClusterOptions.MaxWorkers,
                pool.SlotCount + 1), pool.Stopping)),
            SIGTTOU => ("SIGTTOU", "removing a worker", () => rotation.ScaleAsync(Math.Max(1, pool.SlotCount - 1), pool.Stopping)),
            SIGUSR2 => ("SIGUSR2", "primary upgrade", upgradePrimary),
            _ => ("SIGHUP", "rolling restart", (Func<Task>)(() => rotation.RestartAllAsync(pool.Stopping))),
        };

        SupervisionLog.SignalReceived(logger, name, operation);
        _ = Task.Run(async () =>
        {
            try
            {
                await run().ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            catch (InvalidOperationException) when (name == "SIGUSR2")
            {
                // Refused or failed: PrimaryUpgrade has logged why, in one line.
            }
#pragma warning disable CA1031 // a signal's operation runs in the background: any failure is logged, none is lost
            catch (Exception e)
#pragma warning restore CA1031
            {
                SupervisionLog.OperationFailed(logger, operation, e);
            }
        });
    }
}
