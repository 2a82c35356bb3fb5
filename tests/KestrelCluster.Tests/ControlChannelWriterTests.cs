// The control channel's writer over a real SOCK_SEQPACKET pair, with a peer that stops reading: nothing blocks
// the caller, control frames wait in order, messages past the bound are refused clearly, a cancelled message is
// never sent, and what was accepted arrives in order once the peer reads again.
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed class ControlChannelWriterTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("kc-writer-test-").FullName;
    private readonly Socket _sender;
    private readonly Socket _peer;
    private readonly ControlChannelWriter _writer;
    private int _broken;

    public ControlChannelWriterTests()
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_directory, "w.sock")));
        listener.Listen();
        _sender = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        _sender.Connect(listener.LocalEndPoint!);
        _peer = listener.Accept();
        _writer = new ControlChannelWriter(_sender, "test writer", _ => Interlocked.Increment(ref _broken));
    }

    [Fact]
    public async Task Messages_PeerNotReading_RefusedPastTheBoundWithAClearError_AndEveryAcceptedOneArrivesInOrder()
    {
        var accepted = new List<Task>();
        Task refused;
        var index = 0;
        while (true)
        {
            var sent = _writer.SendMessageAsync(Message(index), CancellationToken.None);
            if (sent.IsFaulted)
            {
                refused = sent;
                break;
            }

            accepted.Add(sent);
            index++;
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => refused);
        Assert.Contains("is not reading its control channel", error.Message, StringComparison.Ordinal);
        Assert.True(_writer.QueuedCount > 0, "some messages wait for the peer");

        var received = ReadMessages(accepted.Count);

        Assert.Equal(Enumerable.Range(0, accepted.Count), received);
        await Task.WhenAll(accepted).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, _broken);
    }

    [Fact]
    public async Task Message_CancelledWhileWaiting_IsNeverSent_AndTheOnesAroundItAre()
    {
        var index = FillPeerQueue();
        using var cancel = new CancellationTokenSource();
        var before = _writer.SendMessageAsync(Message(index), CancellationToken.None);
        var cancelled = _writer.SendMessageAsync(Message(index + 1), cancel.Token);
        var after = _writer.SendMessageAsync(Message(index + 2), CancellationToken.None);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        var received = ReadMessages(index + 2);
        Assert.Equal([.. Enumerable.Range(0, index + 1), index + 2], received);
        await Task.WhenAll(before, after).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void ControlFrames_PeerQueueFull_QueuedWithoutBlocking_AndDeliveredInOrderAfterTheMessages()
    {
        var index = FillPeerQueue();

        // The caller is never held up: each call returns at once, whether or not the peer reads.
        for (var i = 0; i < 100; i++)
        {
            Assert.True(_writer.TrySend(Message(index + i)));
        }

        Assert.Equal(Enumerable.Range(0, index + 100), ReadMessages(index + 100));
    }

    [Fact]
    public async Task ControlFrames_PeerReadsNothingForThousandsOfFrames_TheChannelBreaksLoudlyInsteadOfGrowingForever()
    {
        FillPeerQueue();
        var queuedBefore = _writer.QueuedCount;
        var refusedAt = -1;
        for (var i = 0; i <= ControlChannelWriter.MaxQueuedFrames; i++)
        {
            if (!_writer.TrySend(ControlFrames.Ready()))
            {
                refusedAt = i;
                break;
            }
        }

        Assert.Equal(ControlChannelWriter.MaxQueuedFrames - queuedBefore, refusedAt); // queued up to the limit, then refused
        await Wait.UntilAsync(() => Volatile.Read(ref _broken) == 1, TimeSpan.FromSeconds(10), "the writer reports the channel broken");
        Assert.False(_writer.TrySend(ControlFrames.Ready()), "nothing is accepted once broken");
    }

    [Fact]
    public void NotifyWhenWritable_AfterTheQueueFilled_CalledOnceThePeerReads()
    {
        using var writable = new ManualResetEventSlim();
        using var writer = new ControlChannelWriter(_sender, "test writer 2", _ => { }, writable.Set);
        var frame = Message(0);
        while (Libc.SendMessage(_sender.SafeHandle, frame, []) == 0)
        {
        }

        writer.NotifyWhenWritable();
        Assert.False(writable.Wait(TimeSpan.FromMilliseconds(200)), "not writable while the peer reads nothing");

        var buffer = new byte[ControlFrames.MaxFrameLength];
        while (Libc.ReceiveMessage(_peer.SafeHandle, buffer, [], out _, out _, out _) == 0)
        {
        }

        Assert.True(writable.Wait(TimeSpan.FromSeconds(10)), "told once the socket takes more");
    }

    public void Dispose()
    {
        _writer.Dispose();
        _sender.Dispose();
        _peer.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>A 16 KiB message whose first four bytes are its index.</summary>
    private static byte[] Message(int index)
    {
        var payload = new byte[16 * 1024];
        BitConverter.TryWriteBytes(payload, index);
        return ControlFrames.Message(broadcast: false, fromWorkerId: 0, payload);
    }

    /// <summary>Sends messages until the writer has to queue one; returns how many were sent (indexes 0 … n-1).</summary>
    private int FillPeerQueue()
    {
        var index = 0;
        while (_writer.QueuedCount == 0)
        {
            Assert.True(_writer.TrySend(Message(index++)));
        }

        return index;
    }

    /// <summary>Reads <paramref name="count"/> messages as the peer, waiting for each; returns their indexes.</summary>
    private List<int> ReadMessages(int count)
    {
        var received = new List<int>();
        var buffer = new byte[ControlFrames.MaxFrameLength];
        while (received.Count < count)
        {
            Assert.True(_peer.Poll(TimeSpan.FromSeconds(10), SelectMode.SelectRead), $"message {received.Count} arrives");
            Assert.Equal(0, Libc.ReceiveMessage(_peer.SafeHandle, buffer, [], out var length, out _, out _));
            Assert.True(ControlFrames.TryReadMessage(buffer.AsSpan(0, length), out _, out _, out var payload));
            received.Add(BitConverter.ToInt32(payload));
        }

        return received;
    }
}
