// The control-channel frames: what is written reads back, and anything malformed is refused.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests;

public sealed class ControlFramesTests
{
    [Fact]
    public void Hello_RoundTrip_KeepsIdAndSecret()
    {
        var secret = Enumerable.Range(0, ControlFrames.SecretLength).Select(i => (byte)i).ToArray();

        Assert.True(ControlFrames.TryReadHello(ControlFrames.Hello(7, secret), out var id, out var read));
        Assert.Equal(7, id);
        Assert.Equal(secret, read.ToArray());
        Assert.True(ControlFrames.TryReadHelloVersion(ControlFrames.Hello(7, secret), out var version));
        Assert.Equal(ControlProtocol.Version, version);
    }

    [Fact]
    public void Hello_OfProtocolZero_TheUnversioned37Bytes_ReadsAsVersionZero_AndIsNotAHelloOfThisVersion()
    {
        var unversioned = new byte[1 + sizeof(int) + ControlFrames.SecretLength]; // type, worker id, secret
        unversioned[0] = ControlFrames.Hello(1, new byte[ControlFrames.SecretLength])[0];
        unversioned[1] = 7;

        Assert.True(ControlFrames.TryReadHelloVersion(unversioned, out var version));
        Assert.Equal(0, version);
        Assert.False(ControlFrames.TryReadHello(unversioned, out _, out _));
    }

    [Fact]
    public void Hello_OfAFutureProtocol_ReadsItsVersion_AndIsNotAHelloOfThisVersion()
    {
        var future = ControlFrames.Hello(7, new byte[ControlFrames.SecretLength], version: ControlProtocol.Version + 1);

        Assert.True(ControlFrames.TryReadHelloVersion(future, out var version));
        Assert.Equal(ControlProtocol.Version + 1, version);
        Assert.False(ControlFrames.TryReadHello(future, out _, out _));
    }

    [Theory]
    [InlineData("127.0.0.1:0")]
    [InlineData("[::]:5000")]
    [InlineData("[::1]:443")]
    public void Register_IpEndPoint_RoundTrips(string text)
    {
        var endpoint = IPEndPoint.Parse(text);

        Assert.True(ControlFrames.TryReadRegister(ControlFrames.Register(3, endpoint), out var requestId, out var read));
        Assert.Equal(3, requestId);
        Assert.Equal(endpoint, read);
    }

    [Fact]
    public void Register_UnixEndPoint_RoundTrips()
    {
        var endpoint = new UnixDomainSocketEndPoint("/tmp/app.sock");

        Assert.True(ControlFrames.TryReadRegister(ControlFrames.Register(1, endpoint), out _, out var read));
        Assert.Equal("/tmp/app.sock", read!.ToString());
    }

    [Fact]
    public void Handoff_EntriesMustMatchTheFdsReceived()
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HandoffLength(1)];
        var peer = PeerAddressOf(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000));
        ControlFrames.WriteHandoffEntry(frame, 0, new HandoffEntry(2, 99, 123_456_789, peer));
        var entries = new HandoffEntry[4];

        Assert.True(ControlFrames.TryReadHandoff(frame, 1, entries));
        Assert.Equal((2, 99L, 123_456_789L), (entries[0].ListenerId, entries[0].HandoffId, entries[0].AcceptedAt));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000), entries[0].Peer.ToEndPoint());
        Assert.False(ControlFrames.TryReadHandoff(frame, 0, entries)); // no fd came with it
        Assert.False(ControlFrames.TryReadHandoff(frame, 2, entries)); // more fds than entries
    }

    [Fact]
    public void Handoff_SeveralEntriesInOneFrame_ReadBackInOrder()
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HandoffLength(3)];
        for (var i = 0; i < 3; i++)
        {
            ControlFrames.WriteHandoffEntry(frame, i, new HandoffEntry(i + 1, 100 + i, 1000 + i, PeerAddressOf(new IPEndPoint(IPAddress.Loopback, 5000 + i))));
        }

        var entries = new HandoffEntry[3];

        Assert.True(ControlFrames.TryReadHandoff(frame, 3, entries));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal((i + 1, 100L + i, 1000L + i), (entries[i].ListenerId, entries[i].HandoffId, entries[i].AcceptedAt));
            Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5000 + i), entries[i].Peer.ToEndPoint());
        }

        Assert.False(ControlFrames.TryReadHandoff(frame, 2, entries)); // fewer fds than entries

        // A worker at its open-files limit reads every entry, however many fds the kernel installed (MSG_CTRUNC).
        Assert.True(ControlFrames.TryReadHandoff(frame, entries, out var count));
        Assert.Equal(3, count);
        Assert.Equal(102L, entries[2].HandoffId);
        Assert.False(ControlFrames.TryReadHandoff(frame[..^1], entries, out count)); // not a whole number of entries
        Assert.False(ControlFrames.TryReadHandoff(frame, entries.AsSpan(0, 2), out count)); // more entries than room
    }

    [Fact]
    public void FdLimit_RoundTrips_AndAZeroOrShortFrameIsMalformed()
    {
        Assert.True(ControlFrames.TryReadFdLimit(ControlFrames.FdLimit(400), out var limit));
        Assert.Equal(400, limit);
        Assert.False(ControlFrames.TryReadFdLimit(ControlFrames.FdLimit(0), out _));
        Assert.False(ControlFrames.TryReadFdLimit(ControlFrames.FdLimit(400).AsSpan(0, 5), out _));
    }

    [Theory]
    [InlineData("[2001:db8::7]:443")]
    [InlineData("[::ffff:127.0.0.1]:5000")]
    [InlineData("127.0.0.1:1")]
    public void Handoff_PeerAddress_RoundTrips(string endpoint)
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HandoffLength(1)];
        var expected = IPEndPoint.Parse(endpoint);
        ControlFrames.WriteHandoffEntry(frame, 0, new HandoffEntry(1, 1, 1, PeerAddressOf(expected)));
        var entries = new HandoffEntry[1];

        Assert.True(ControlFrames.TryReadHandoff(frame, 1, entries));
        Assert.Equal(expected, entries[0].Peer.ToEndPoint());
        Assert.Equal(expected.AddressFamily, entries[0].Peer.Family);
    }

    [Fact]
    public void Handoff_UnknownPeer_TravelsAsUnknown_AndAnOverlongOneIsMalformed()
    {
        Span<byte> frame = stackalloc byte[ControlFrames.HandoffLength(1)];
        ControlFrames.WriteHandoffEntry(frame, 0, new HandoffEntry(1, 1, 1, PeerAddress.From([1, 0]))); // AF_UNIX, unnamed
        var entries = new HandoffEntry[1];

        Assert.True(ControlFrames.TryReadHandoff(frame, 1, entries));
        Assert.Null(entries[0].Peer.ToEndPoint());
        Assert.Equal(AddressFamily.Unknown, entries[0].Peer.Family);

        frame[1 + sizeof(int) + (2 * sizeof(long))] = PeerAddress.MaxLength + 1; // the length byte
        Assert.False(ControlFrames.TryReadHandoff(frame, 1, entries));
    }

    /// <summary>The sockaddr the kernel would write for <paramref name="endpoint"/>.</summary>
    internal static PeerAddress PeerAddressOf(IPEndPoint endpoint)
    {
        var serialized = endpoint.Serialize();
        var bytes = new byte[serialized.Size];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = serialized[i];
        }

        return PeerAddress.From(bytes);
    }

    [Fact]
    public void Acks_RoundTrip_SeveralInOneFrame_WithTheClosedCount()
    {
        var frame = ControlFrames.Acks([(7L, true), (8L, false)], closed: 3);

        Assert.Equal(2, ControlFrames.ReadAckCount(frame, out var closed));
        Assert.Equal(3, closed);
        Assert.True(ControlFrames.TryReadAck(frame, 1, out var id, out var accepted));
        Assert.Equal((8L, false), (id, accepted));
    }

    [Theory]
    [InlineData(new byte[] { 6 })]                                                  // no count
    [InlineData(new byte[] { 6, 1, 0 })]                                            // no closed count
    [InlineData(new byte[] { 6, 0, 0, 0, 0, 0, 0 })]                                // zero acks
    [InlineData(new byte[] { 6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 })]        // count 1, entry cut short
    [InlineData(new byte[] { 6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9 })]  // count 1, one byte too many
    [InlineData(new byte[] { 6, 1, 0, 255, 255, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 1 })] // a negative closed count
    public void Acks_Malformed_AreRefused(byte[] frame) =>
        Assert.Equal(-1, ControlFrames.ReadAckCount(frame, out _));

    [Fact]
    public void Acks_ImpossibleAcceptedFlag_IsRefused()
    {
        var frame = ControlFrames.Acks([(7L, true)]);
        frame[^1] = 2;

        Assert.False(ControlFrames.TryReadAck(frame, 0, out _, out _));
    }

    [Theory]
    [InlineData(new byte[] { 1, 0, 0 })]              // hello too short
    [InlineData(new byte[] { 2, 0, 0, 0, 0 })]        // hello type mismatch / register: no endpoint
    public void Hello_Malformed_IsRefused(byte[] frame) =>
        Assert.False(ControlFrames.TryReadHello(frame, out _, out _));

    [Theory]
    [InlineData("tcp:not-an-address")]
    [InlineData("udp:127.0.0.1:80")]
    [InlineData("unix:")]
    public void Register_BadEndpointText_IsRefused(string text)
    {
        var frame = new byte[1 + 4 + text.Length];
        frame[0] = (byte)FrameType.Register;
        System.Text.Encoding.UTF8.GetBytes(text, frame.AsSpan(5));

        Assert.False(ControlFrames.TryReadRegister(frame, out _, out _));
    }

    [Fact]
    public void Register_InvalidUtf8_IsRefused()
    {
        byte[] frame = [(byte)FrameType.Register, 0, 0, 0, 0, 0xC3, 0x28];

        Assert.False(ControlFrames.TryReadRegister(frame, out _, out _));
    }
}
