// The messaging JSON helpers with source-generated metadata (the trimming- and AOT-safe overloads): what is sent is the
// JSON of the value, and the receiver reads it back with the same metadata.
using System.Text.Json.Serialization;

namespace KestrelCluster.Tests;

public sealed partial class MessagingJsonTests
{
    [Fact]
    public async Task JsonTypeInfoOverloads_SendTheValuesJson_AndDeserializeReadsItBack()
    {
        var messenger = new RecordingMessenger();
        var value = new Invalidate("user:42", 7);

        await messenger.BroadcastJsonAsync(value, MessagingJsonContext.Default.Invalidate);
        await messenger.SendJsonToPrimaryAsync(value, MessagingJsonContext.Default.Invalidate);
        await messenger.SendJsonToWorkerAsync(3, value, MessagingJsonContext.Default.Invalidate);

        Assert.Equal(["broadcast", "primary", "worker 3"], messenger.Sent.Select(s => s.To));
        Assert.All(messenger.Sent, s =>
        {
            Assert.Equal("""{"Key":"user:42","Version":7}""", System.Text.Encoding.UTF8.GetString(s.Payload.Span));
            Assert.Equal(value, new ClusterMessage(fromWorkerId: 1, broadcast: false, s.Payload)
                .Deserialize(MessagingJsonContext.Default.Invalidate));
        });
    }

    internal sealed record Invalidate(string Key, int Version);

    [JsonSerializable(typeof(Invalidate))]
    internal sealed partial class MessagingJsonContext : JsonSerializerContext;

    private sealed class RecordingMessenger : IClusterMessenger
    {
        public List<(string To, ReadOnlyMemory<byte> Payload)> Sent { get; } = [];

        public int MaxMessageSize => 64 * 1024;

        public ValueTask SendToPrimaryAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
            Record("primary", payload);

        public ValueTask SendToWorkerAsync(int workerId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
            Record($"worker {workerId}", payload);

        public ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
            Record("broadcast", payload);

        public IDisposable Subscribe(Func<ClusterMessage, ValueTask> handler) => throw new NotSupportedException();

        private ValueTask Record(string to, ReadOnlyMemory<byte> payload)
        {
            Sent.Add((to, payload.ToArray()));
            return ValueTask.CompletedTask;
        }
    }
}
