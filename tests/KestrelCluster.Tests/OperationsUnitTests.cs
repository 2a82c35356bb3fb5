// The pieces of the operations surface that are pure functions: the status query's frames, the health verdict, the
// workers' OpenTelemetry resource attributes, and the heartbeat's new fields.
using System.Text.Json;
using KestrelCluster.Hosting;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Primary.Operations;
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KestrelCluster.Tests;

public sealed class OperationsUnitTests
{
    [Fact]
    public async Task StatusReply_LargerThanAFrame_TravelsInPartsAndIsReassembled()
    {
        var json = new byte[ControlFrames.MaxStatusPart * 2 + 10];
        Random.Shared.NextBytes(json);
        var frames = ControlFrames.StatusReply(7, json).ToList();
        Assert.Equal(3, frames.Count);
        Assert.All(frames, f => Assert.InRange(f.Length, 1, ControlFrames.MaxFrameLength));

        byte[]? sent = null;
        var queries = new WorkerStatusQueries(frame =>
        {
            sent = frame.ToArray();
            return true;
        });
        var query = queries.QueryAsync(CancellationToken.None);
        Assert.True(ControlFrames.TryReadStatusQuery(sent, out var id));
        foreach (var frame in ControlFrames.StatusReply(id, json))
        {
            Assert.True(queries.OnReply(frame));
        }

        Assert.Equal(json, await query);
    }

    [Fact]
    public async Task StatusQuery_PrimaryGone_FailsAtOnce_AndAMalformedReplyIsAViolation()
    {
        var queries = new WorkerStatusQueries(_ => true);
        var query = queries.QueryAsync(CancellationToken.None);
        queries.FailAll("the primary closed the control channel");
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => query);
        Assert.Contains("primary is gone", error.Message, StringComparison.Ordinal);

        Assert.False(queries.OnReply([(byte)FrameType.StatusReply, 1, 0, 0, 0, 2]));
        Assert.False(queries.OnReply([(byte)FrameType.StatusReply, 1]));
        Assert.True(queries.OnReply([(byte)FrameType.StatusReply, 99, 0, 0, 0, 1, (byte)'{'])); // nobody waits: ignored
    }

    [Theory]
    [InlineData("running", 2, 2, 1, HealthStatus.Healthy)]
    [InlineData("running", 1, 2, 1, HealthStatus.Degraded)]
    [InlineData("running", 0, 2, 1, HealthStatus.Unhealthy)]
    [InlineData("running", 1, 3, 2, HealthStatus.Unhealthy)]
    [InlineData("stopping", 2, 2, 1, HealthStatus.Unhealthy)]
    public void HealthCheck_Verdict_FollowsReadySlots_TheMinimum_AndStopping(string state, int ready, int workers, int minimum,
        HealthStatus expected)
    {
        using var status = JsonDocument.Parse($$"""
            {"primary":{"mode":"cluster","state":"{{state}}","readySlots":{{ready}},"workerCount":{{workers}}},"workers":[]}
            """);

        var result = ClusterHealthCheck.Evaluate(status.RootElement, minimum, HealthStatus.Unhealthy);

        Assert.Equal(expected, result.Status);
        Assert.Equal(ready, result.Data["readyWorkers"]);
    }

    [Fact]
    public void HealthCheck_Standalone_IsHealthy()
    {
        using var status = JsonDocument.Parse(ClusterStatusReport.WriteStandalone("1.2.3", ["http://localhost:5000"]));

        Assert.Equal(HealthStatus.Healthy, ClusterHealthCheck.Evaluate(status.RootElement, 1, HealthStatus.Unhealthy).Status);
        Assert.Equal("1.2.3", status.RootElement.GetProperty("primary").GetProperty("version").GetString());
    }

    [Theory]
    [InlineData(null, "service.instance.id={host}/3,kestrelcluster.worker.id=9,kestrelcluster.worker.slot=3")]
    [InlineData("service.name=shop,", "service.name=shop,service.instance.id={host}/3,kestrelcluster.worker.id=9,kestrelcluster.worker.slot=3")]
    [InlineData("service.instance.id=mine", "service.instance.id=mine,kestrelcluster.worker.id=9,kestrelcluster.worker.slot=3")]
    public void ResourceAttributes_AppendedToTheApps_KeepingAnInstanceIdItSet(string? existing, string expected)
    {
        var identity = new WorkerIdentity(9, 3, 4, "/tmp/x", new byte[32], null, false, 1);

        Assert.Equal(expected.Replace("{host}", Uri.EscapeDataString(Environment.MachineName), StringComparison.Ordinal),
            WorkerLauncher.ResourceAttributes(identity, existing));
    }

    [Fact]
    public void Heartbeat_CpuTimeAndGcHeap_RoundTrip_AndNegativesAreRefused()
    {
        var beat = new WorkerHeartbeat(10, 20, 30, 40, TimeSpan.FromMilliseconds(1234), 5678);
        var frame = new byte[ControlFrames.HeartbeatLength];
        ControlFrames.WriteHeartbeat(frame, beat);

        Assert.True(ControlFrames.TryReadHeartbeat(frame, out var read));
        Assert.Equal(beat, read);

        ControlFrames.WriteHeartbeat(frame, beat with { GcHeapBytes = -1 });
        Assert.False(ControlFrames.TryReadHeartbeat(frame, out _));
    }

    [Theory]
    [InlineData("simple", "info: App[1]", false, "[worker 3] info: App[1]\n")]
    [InlineData("simple", "      at Foo.Bar()", true, "[worker 3]       at Foo.Bar()\n")]
    [InlineData("systemd", "<6>App[1] started", false, "<6>[worker 3] App[1] started\n")]
    [InlineData("systemd", "Unhandled exception.", true, "<3>[worker 3] Unhandled exception.\n")]
    [InlineData("systemd", "a raw line", false, "[worker 3] a raw line\n")]
    [InlineData("json", "{\"EventId\":1,\"Message\":\"hi\"}", false, "{\"WorkerId\":3,\"Slot\":1,\"EventId\":1,\"Message\":\"hi\"}\n")]
    [InlineData("json", "{}", false, "{\"WorkerId\":3,\"Slot\":1}\n")]
    public void WorkerOutput_EachFormatter_AttributesTheLine(string formatter, string line, bool isError, string expected) =>
        Assert.Equal(expected, WorkerOutputFormat.Attribute(System.Text.Encoding.UTF8.GetBytes(line),
            WorkerOutputFormat.FromFormatterName(formatter), 3, 1, isError));

    [Theory]
    [InlineData("{not json}")]
    [InlineData("{\"a\":1} trailing {\"b\":2}")]
    [InlineData("Unhandled exception. System.Exception: \"quoted\" \\ back\tslash")]
    public void WorkerOutput_Json_ALineThatIsNotAnEntry_BecomesOne(string line)
    {
        var written = WorkerOutputFormat.Attribute(System.Text.Encoding.UTF8.GetBytes(line), ConsoleFormat.Json, 3, 1, isError: true);

        using var entry = JsonDocument.Parse(written);
        Assert.Equal(line, entry.RootElement.GetProperty("Message").GetString());
        Assert.Equal("Error", entry.RootElement.GetProperty("LogLevel").GetString());
        Assert.Equal(WorkerOutputFormat.OutputCategory, entry.RootElement.GetProperty("Category").GetString());
        Assert.Equal(3, entry.RootElement.GetProperty("WorkerId").GetInt32());
        Assert.Equal(1, entry.RootElement.GetProperty("Slot").GetInt32());
    }

    [Fact]
    public async Task WorkerOutput_Pump_WritesWholeLines_AndTheLastOneWithoutANewline()
    {
        var text = "first\r\nsecond\n" + new string('y', WorkerOutput.MaxLineBytes + 10) + "\nlast, unterminated";
        using var pipe = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
        using var console = new StringWriter();

        await WorkerOutput.PumpAsync(pipe, console, ConsoleFormat.Simple, 7, 0, isError: false);

        var lines = console.ToString().Split('\n');
        Assert.Equal("[worker 7] first", lines[0]);
        Assert.Equal("[worker 7] second", lines[1]);
        Assert.Equal("[worker 7] " + new string('y', WorkerOutput.MaxLineBytes), lines[2]); // a line too long is written in parts
        Assert.Equal("[worker 7] " + new string('y', 10), lines[3]);
        Assert.Equal("[worker 7] last, unterminated", lines[4]);
    }
}
