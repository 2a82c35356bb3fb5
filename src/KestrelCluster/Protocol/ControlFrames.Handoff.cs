// The hot path's frames: Handoff (primary → worker: accepted sockets, one entry per fd) and Ack (worker → primary:
// taken or refused, with the connections closed since the last report). Fixed-size entries, no allocation.
using System.Buffers.Binary;

namespace KestrelCluster.Protocol;

internal static partial class ControlFrames
{
    /// <summary>
    /// Size of one <see cref="HandoffEntry"/> in a <see cref="FrameType.Handoff"/> frame: listener id, handoff id,
    /// accepted-at, then the client's sockaddr as a length byte and <see cref="PeerAddress.MaxLength"/> bytes.
    /// </summary>
    private const int HandoffEntryLength = HandoffPeerOffset + 1 + PeerAddress.MaxLength;

    // Offsets of a handoff entry's fields after the listener id (at 0).
    private const int HandoffIdOffset = sizeof(int);
    private const int HandoffAcceptedAtOffset = HandoffIdOffset + sizeof(long);
    private const int HandoffPeerOffset = HandoffAcceptedAtOffset + sizeof(long);

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

    /// <summary>Reads the entries of a handoff frame; their count must equal the fds received.</summary>
    public static bool TryReadHandoff(ReadOnlySpan<byte> frame, int fdCount, Span<HandoffEntry> entries) =>
        fdCount > 0 && TryReadHandoff(frame, entries, out var count) && count == fdCount;

    /// <summary>
    /// Reads every entry of a handoff frame, however many fds arrived with it (fewer than entries when the receiver is at
    /// its open-files limit: the kernel installs the first fds and drops the rest).
    /// </summary>
    public static bool TryReadHandoff(ReadOnlySpan<byte> frame, Span<HandoffEntry> entries, out int count)
    {
        count = (frame.Length - 1) / HandoffEntryLength;
        if (count == 0 || frame.Length != HandoffLength(count) || count > entries.Length)
        {
            count = 0;
            return false;
        }

        for (var i = 0; i < count; i++)
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

    /// <summary>Length of an <see cref="FrameType.FdLimit"/> frame.</summary>
    public const int FdLimitLength = 1 + sizeof(long);

    /// <summary>An <see cref="FrameType.FdLimit"/> frame: the worker is at its open-files limit of <paramref name="limit"/>.</summary>
    public static byte[] FdLimit(long limit)
    {
        var frame = new byte[FdLimitLength];
        frame[0] = (byte)FrameType.FdLimit;
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(1), limit);
        return frame;
    }

    public static bool TryReadFdLimit(ReadOnlySpan<byte> frame, out long limit)
    {
        limit = 0;
        if (frame.Length != FdLimitLength || frame[0] != (byte)FrameType.FdLimit)
        {
            return false;
        }

        limit = BinaryPrimitives.ReadInt64LittleEndian(frame[1..]);
        return limit > 0;
    }
}
