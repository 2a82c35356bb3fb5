// Encoding and strict decoding of control-channel frames. Every length is bounded and every frame is checked
// against its exact shape: a frame that does not parse is a protocol violation and costs the sender its channel.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Protocol;

internal static class ControlFrames
{
    /// <summary>Largest application message payload (IClusterMessenger).</summary>
    public const int MaxMessageSize = 64 * 1024;

    /// <summary>
    /// Most fds one control message carries. The kernel allows 253; the receiver's control buffer is sized for this
    /// many, so a sender can never make it truncate (with MSG_CTRUNC the kernel closes the fds that did not fit).
    /// </summary>
    public const int MaxFdsPerMessage = 64;

    /// <summary>Largest frame either side sends or accepts: a message with its header.</summary>
    public const int MaxFrameLength = MaxMessageSize + MessageHeaderLength;

    private const int MessageHeaderLength = 1 + 1 + sizeof(int);

    /// <summary>Largest registration frame (an endpoint or an error text).</summary>
    private const int MaxTextFrameLength = 4096;

    public const int SecretLength = 32;

    /// <summary>
    /// Size of one <see cref="HandoffEntry"/> in a <see cref="FrameType.Handoff"/> frame: listener id, handoff id,
    /// accepted-at, then the client's sockaddr as a length byte and <see cref="PeerAddress.MaxLength"/> bytes.
    /// </summary>
    private const int HandoffEntryLength = HandoffPeerOffset + 1 + PeerAddress.MaxLength;

    // Offsets of a handoff entry's fields after the listener id (at 0).
    private const int HandoffIdOffset = sizeof(int);
    private const int HandoffAcceptedAtOffset = HandoffIdOffset + sizeof(long);
    private const int HandoffPeerOffset = HandoffAcceptedAtOffset + sizeof(long);

    public static byte[] Hello(int workerId, ReadOnlySpan<byte> secret)
    {
        if (secret.Length != SecretLength)
        {
            throw new ArgumentException($"The secret must be {SecretLength} bytes.", nameof(secret));
        }

        var frame = new byte[1 + sizeof(int) + SecretLength];
        frame[0] = (byte)FrameType.Hello;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), workerId);
        secret.CopyTo(frame.AsSpan(1 + sizeof(int)));
        return frame;
    }

    public static byte[] Register(int requestId, EndPoint endpoint) =>
        WithText(FrameType.Register, requestId, 0, EndpointText.Format(endpoint), sizeof(int));

    public static byte[] Registered(int requestId, int listenerId, string endpointOrError) =>
        WithText(FrameType.Registered, requestId, listenerId, endpointOrError, 2 * sizeof(int));

    public static byte[] Ready() => [(byte)FrameType.Ready];

    public static byte[] Stop() => [(byte)FrameType.Stop];

    public static byte[] Unregister(int listenerId)
    {
        var frame = new byte[1 + sizeof(int)];
        frame[0] = (byte)FrameType.Unregister;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), listenerId);
        return frame;
    }

    /// <summary>Most acknowledgements one Ack frame carries.</summary>
    public const int MaxAcksPerFrame = 256;

    // type, count (ushort), connections closed since the worker's last report (int), then the entries.
    private const int AckHeaderLength = 1 + sizeof(ushort) + sizeof(int);
    private const int AckEntryLength = sizeof(long) + 1;

    /// <summary>Length of an Ack frame carrying <paramref name="count"/> acknowledgements.</summary>
    public static int AckLength(int count) => AckHeaderLength + (count * AckEntryLength);

    /// <summary>
    /// Writes an Ack frame for 1 to <see cref="MaxAcksPerFrame"/> handed-off sockets — (handoff id, accepted) each —
    /// that also carries the worker's connections closed since its last report; returns its length.
    /// </summary>
    public static int WriteAcks(Span<byte> frame, ReadOnlySpan<(long HandoffId, bool Accepted)> acks, int closed)
    {
        if (acks.IsEmpty || acks.Length > MaxAcksPerFrame)
        {
            throw new ArgumentOutOfRangeException(nameof(acks), $"An Ack frame carries 1 to {MaxAcksPerFrame} acknowledgements.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(closed);
        frame[0] = (byte)FrameType.Ack;
        BinaryPrimitives.WriteUInt16LittleEndian(frame[1..], (ushort)acks.Length);
        BinaryPrimitives.WriteInt32LittleEndian(frame[(1 + sizeof(ushort))..], closed);
        for (var i = 0; i < acks.Length; i++)
        {
            var entry = frame[(AckHeaderLength + (i * AckEntryLength))..];
            BinaryPrimitives.WriteInt64LittleEndian(entry, acks[i].HandoffId);
            entry[sizeof(long)] = acks[i].Accepted ? (byte)1 : (byte)0;
        }

        return AckLength(acks.Length);
    }

    /// <summary>An Ack frame as a new array (see <see cref="WriteAcks"/>).</summary>
    public static byte[] Acks(ReadOnlySpan<(long HandoffId, bool Accepted)> acks, int closed = 0)
    {
        var frame = new byte[AckLength(acks.Length)];
        WriteAcks(frame, acks, closed);
        return frame;
    }

    /// <summary>
    /// The number of acknowledgements in an Ack frame and the connections closed it reports, or -1 if it is malformed.
    /// </summary>
    public static int ReadAckCount(ReadOnlySpan<byte> frame, out int closed)
    {
        closed = 0;
        if (frame.Length < AckHeaderLength)
        {
            return -1;
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(frame[1..]);
        closed = BinaryPrimitives.ReadInt32LittleEndian(frame[(1 + sizeof(ushort))..]);
        return count is > 0 and <= MaxAcksPerFrame && closed >= 0 && frame.Length == AckLength(count) ? count : -1;
    }

    /// <summary>Reads acknowledgement <paramref name="index"/> of an Ack frame whose count was checked.</summary>
    public static bool TryReadAck(ReadOnlySpan<byte> frame, int index, out long handoffId, out bool accepted)
    {
        var entry = frame.Slice(AckHeaderLength + (index * AckEntryLength), AckEntryLength);
        handoffId = BinaryPrimitives.ReadInt64LittleEndian(entry);
        accepted = entry[sizeof(long)] == 1;
        return entry[sizeof(long)] <= 1;
    }

    /// <summary>Length of a handoff frame carrying <paramref name="count"/> fds.</summary>
    public static int HandoffLength(int count) => 1 + (count * HandoffEntryLength);

    /// <summary>Writes entry <paramref name="index"/> of a handoff frame (and its type byte); the frame is <see cref="HandoffLength"/>
    /// long.</summary>
    public static void WriteHandoffEntry(Span<byte> frame, int index, in HandoffEntry entry)
    {
        frame[0] = (byte)FrameType.Handoff;
        var fields = frame.Slice(1 + (index * HandoffEntryLength), HandoffEntryLength);
        BinaryPrimitives.WriteInt32LittleEndian(fields, entry.ListenerId);
        BinaryPrimitives.WriteInt64LittleEndian(fields[HandoffIdOffset..], entry.HandoffId);
        BinaryPrimitives.WriteInt64LittleEndian(fields[HandoffAcceptedAtOffset..], entry.AcceptedAt);
        var peer = fields[HandoffPeerOffset..];
        var length = entry.Peer.Length;
        peer[0] = (byte)length;
        entry.Peer.CopyTo(peer[1..]);
        peer[(1 + length)..].Clear();
    }

    public static byte[] Message(bool broadcast, int fromWorkerId, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[MessageHeaderLength + payload.Length];
        frame[0] = (byte)FrameType.Message;
        frame[1] = broadcast ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(2), fromWorkerId);
        payload.CopyTo(frame.AsSpan(MessageHeaderLength));
        return frame;
    }

    public static bool TryReadMessage(ReadOnlySpan<byte> frame, out bool broadcast, out int fromWorkerId, out ReadOnlySpan<byte> payload)
    {
        broadcast = false;
        fromWorkerId = 0;
        payload = default;
        if (frame.Length < MessageHeaderLength || frame.Length > MaxFrameLength || frame[1] > 1)
        {
            return false;
        }

        broadcast = frame[1] == 1;
        fromWorkerId = BinaryPrimitives.ReadInt32LittleEndian(frame[2..]);
        payload = frame[MessageHeaderLength..];
        return true;
    }

    public static byte[] ConnectionsClosed(int count)
    {
        var frame = new byte[1 + sizeof(int)];
        frame[0] = (byte)FrameType.ConnectionsClosed;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), count);
        return frame;
    }

    public static bool TryReadConnectionsClosed(ReadOnlySpan<byte> frame, out int count)
    {
        count = 0;
        if (frame.Length != 1 + sizeof(int))
        {
            return false;
        }

        count = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        return count > 0;
    }

    public const int HeartbeatLength = 1 + sizeof(long) + sizeof(long) + sizeof(int) + sizeof(int);

    public static int WriteHeartbeat(Span<byte> destination, in WorkerHeartbeat heartbeat)
    {
        destination[0] = (byte)FrameType.Heartbeat;
        BinaryPrimitives.WriteInt64LittleEndian(destination[1..], heartbeat.Requests);
        BinaryPrimitives.WriteInt64LittleEndian(destination[9..], heartbeat.WorkingSetBytes);
        BinaryPrimitives.WriteInt32LittleEndian(destination[17..], heartbeat.ThreadPoolLagMilliseconds);
        BinaryPrimitives.WriteInt32LittleEndian(destination[21..], heartbeat.PendingWorkItems);
        return HeartbeatLength;
    }

    public static bool TryReadHeartbeat(ReadOnlySpan<byte> frame, out WorkerHeartbeat heartbeat)
    {
        heartbeat = default;
        if (frame.Length != HeartbeatLength)
        {
            return false;
        }

        heartbeat = new WorkerHeartbeat(
            BinaryPrimitives.ReadInt64LittleEndian(frame[1..]),
            BinaryPrimitives.ReadInt64LittleEndian(frame[9..]),
            BinaryPrimitives.ReadInt32LittleEndian(frame[17..]),
            BinaryPrimitives.ReadInt32LittleEndian(frame[21..]));
        return heartbeat.Requests >= 0 && heartbeat.WorkingSetBytes >= 0 && heartbeat.ThreadPoolLagMilliseconds >= 0
            && heartbeat.PendingWorkItems >= 0;
    }

    public static bool TryReadHello(ReadOnlySpan<byte> frame, out int workerId, out ReadOnlySpan<byte> secret)
    {
        workerId = 0;
        secret = default;
        if (frame.Length != 1 + sizeof(int) + SecretLength || frame[0] != (byte)FrameType.Hello)
        {
            return false;
        }

        workerId = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        secret = frame.Slice(1 + sizeof(int), SecretLength);
        return true;
    }

    public static bool TryReadRegister(ReadOnlySpan<byte> frame, out int requestId, out EndPoint? endpoint)
    {
        endpoint = null;
        return TryReadWithText(frame, FrameType.Register, 1, out requestId, out _, out var text)
            && EndpointText.TryParse(text, out endpoint);
    }

    public static bool TryReadRegistered(ReadOnlySpan<byte> frame, out int requestId, out int listenerId, out string text) =>
        TryReadWithText(frame, FrameType.Registered, 2, out requestId, out listenerId, out text);

    public static bool TryReadUnregister(ReadOnlySpan<byte> frame, out int listenerId)
    {
        listenerId = 0;
        if (frame.Length != 1 + sizeof(int))
        {
            return false;
        }

        listenerId = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        return true;
    }

    /// <summary>Reads the entries of a handoff frame; their count must equal the fds received.</summary>
    public static bool TryReadHandoff(ReadOnlySpan<byte> frame, int fdCount, Span<HandoffEntry> entries)
    {
        if (fdCount == 0 || frame.Length != 1 + (fdCount * HandoffEntryLength) || entries.Length < fdCount)
        {
            return false;
        }

        for (var i = 0; i < fdCount; i++)
        {
            var fields = frame.Slice(1 + (i * HandoffEntryLength), HandoffEntryLength);
            var peer = fields[HandoffPeerOffset..];
            if (peer[0] > PeerAddress.MaxLength)
            {
                return false;
            }

            entries[i] = new HandoffEntry(
                BinaryPrimitives.ReadInt32LittleEndian(fields),
                BinaryPrimitives.ReadInt64LittleEndian(fields[HandoffIdOffset..]),
                BinaryPrimitives.ReadInt64LittleEndian(fields[HandoffAcceptedAtOffset..]),
                PeerAddress.From(peer.Slice(1, peer[0])));
        }

        return true;
    }

    private static byte[] WithText(FrameType type, int first, int second, string text, int headerInts)
    {
        var textLength = Encoding.UTF8.GetByteCount(text);
        var headerLength = 1 + headerInts;
        if (headerLength + textLength > MaxTextFrameLength)
        {
            // Error messages may be long; cut them rather than fail. Endpoints are far below the bound.
            text = text[..Math.Min(text.Length, (MaxTextFrameLength - headerLength) / 4)];
            textLength = Encoding.UTF8.GetByteCount(text);
        }

        var frame = new byte[headerLength + textLength];
        frame[0] = (byte)type;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), first);
        if (headerInts > sizeof(int))
        {
            BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1 + sizeof(int)), second);
        }

        Encoding.UTF8.GetBytes(text, frame.AsSpan(headerLength));
        return frame;
    }

    private static bool TryReadWithText(ReadOnlySpan<byte> frame, FrameType type, int ints, out int first, out int second, out string text)
    {
        first = 0;
        second = 0;
        text = string.Empty;
        var headerLength = 1 + (ints * sizeof(int));
        if (frame.Length < headerLength || frame.Length > MaxTextFrameLength || frame[0] != (byte)type)
        {
            return false;
        }

        first = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        if (ints > 1)
        {
            second = BinaryPrimitives.ReadInt32LittleEndian(frame[(1 + sizeof(int))..]);
        }

        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(frame[headerLength..]);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }
}

/// <summary>What a worker reports with each heartbeat.</summary>
/// <param name="Requests">Requests the worker has started since it launched.</param>
/// <param name="WorkingSetBytes">Its resident memory.</param>
/// <param name="ThreadPoolLagMilliseconds">How late its heartbeat timer ran: a thread-pool starvation signal.</param>
/// <param name="PendingWorkItems">Work items queued to its thread pool.</param>
internal readonly record struct WorkerHeartbeat(long Requests, long WorkingSetBytes, int ThreadPoolLagMilliseconds, int PendingWorkItems);

/// <summary>The text form of the endpoints the control channel talks about: <c>tcp:127.0.0.1:80</c>, <c>tcp:[::]:80</c>,
/// <c>unix:/path</c>.</summary>
internal static class EndpointText
{
    public static string Format(EndPoint endpoint) => endpoint switch
    {
        IPEndPoint ip => "tcp:" + ip,
        UnixDomainSocketEndPoint unix => "unix:" + unix,
        _ => throw new NotSupportedException($"Endpoint type {endpoint.GetType().Name} cannot be handed over."),
    };

    public static bool TryParse(string text, out EndPoint? endpoint)
    {
        endpoint = null;
        if (text.StartsWith("tcp:", StringComparison.Ordinal) && IPEndPoint.TryParse(text.AsSpan(4), out var ip))
        {
            endpoint = ip;
        }
        else if (text.StartsWith("unix:", StringComparison.Ordinal) && text.Length > 5)
        {
            try
            {
                endpoint = new UnixDomainSocketEndPoint(text[5..]);
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        return endpoint is not null;
    }
}

/// <summary>
/// One handed-off socket as the handoff frame describes it. <paramref name="AcceptedAt"/> is the primary's Stopwatch
/// timestamp at accept: CLOCK_MONOTONIC, the same clock in every process of the machine.
/// </summary>
internal readonly record struct HandoffEntry(int ListenerId, long HandoffId, long AcceptedAt, PeerAddress Peer);
