// A worker started by a primary of another control protocol: the worker side of the version check. (The primary side,
// a worker of a newer protocol refused by this primary, is in FaultTests.)
using KestrelCluster.Protocol;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed class ProtocolVersionTests
{
    [Fact]
    public async Task Worker_StartedByAPrimaryOfProtocolZero_StopsAtOnceSayingToUpgradeThePrimary()
    {
        // The worker environment as KestrelCluster 0.4.0-preview.1's primary wrote it: no protocol version. This build on
        // disk, re-launched by that still-running primary (a deploy, then SIGHUP), must not try to speak to it.
        var environment = new Dictionary<string, string?>
        {
            [WorkerIdentity.WorkerIdVariable] = "3",
            [WorkerIdentity.SlotVariable] = "0",
            [WorkerIdentity.WorkerCountVariable] = "1",
            [WorkerIdentity.ControlPathVariable] = "/nonexistent/control.sock",
            [WorkerIdentity.SecretVariable] = Convert.ToBase64String(new byte[ControlFrames.SecretLength]),
            [WorkerIdentity.PrimaryProcessIdVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        using var worker = AppProcess.Start(AppProcess.TestApp, environment);

        Assert.True(await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)), "the worker exits");
        Assert.Equal(ControlProtocol.MismatchExitCode, worker.Process.ExitCode);
        Assert.DoesNotContain("Unhandled exception", worker.Output, StringComparison.Ordinal); // one line, no stack trace
        Assert.Contains(ControlProtocol.PrimaryMismatch(0), worker.Output, StringComparison.Ordinal);
        Assert.Contains("Upgrade the primary", ControlProtocol.PrimaryMismatch(0), StringComparison.Ordinal);
        Assert.DoesNotContain("cannot reach its cluster primary", worker.Output, StringComparison.Ordinal); // it never tried
    }
}
