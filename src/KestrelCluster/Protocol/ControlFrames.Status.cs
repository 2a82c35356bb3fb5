// The status query: a worker asks, the primary answers with the cluster's status as JSON, in parts that each fit
// a frame (a thousand workers make a few hundred KiB).
using System.Buffers.Binary;

namespace KestrelCluster.Protocol;

internal static partial class ControlFrames
{
    private const int StatusReplyHeaderLength = 1 + sizeof(int) + 1;

    /// <summary>The most JSON one StatusReply frame carries.</summary>
    public const int MaxStatusPart = MaxFrameLength - StatusReplyHeaderLength;

    /// <summary>The largest status a worker accepts, all parts together.</summary>
    public const int MaxStatusLength = 16 * 1024 * 1024;

    public static byte[] StatusQuery(int requestId)
    {
        var frame = new byte[1 + sizeof(int)];
        frame[0] = (byte)FrameType.StatusQuery;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), requestId);
        return frame;
    }

    public static bool TryReadStatusQuery(ReadOnlySpan<byte> frame, out int requestId)
    {
        requestId = 0;
        if (frame.Length != 1 + sizeof(int))
        {
            return false;
        }

        requestId = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        return true;
    }

    /// <summary>The frames that carry <paramref name="json"/> as the answer to <paramref name="requestId"/>.</summary>
    public static IEnumerable<byte[]> StatusReply(int requestId, byte[] json)
    {
        var offset = 0;
        do
        {
            var length = Math.Min(MaxStatusPart, json.Length - offset);
            var frame = new byte[StatusReplyHeaderLength + length];
            frame[0] = (byte)FrameType.StatusReply;
            BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), requestId);
            frame[5] = offset + length == json.Length ? (byte)1 : (byte)0;
            json.AsSpan(offset, length).CopyTo(frame.AsSpan(StatusReplyHeaderLength));
            offset += length;
            yield return frame;
        }
        while (offset < json.Length);
    }

    public static bool TryReadStatusReply(ReadOnlySpan<byte> frame, out int requestId, out bool final, out ReadOnlySpan<byte> part)
    {
        requestId = 0;
        final = false;
        part = default;
        if (frame.Length < StatusReplyHeaderLength || frame.Length > MaxFrameLength || frame[5] > 1)
        {
            return false;
        }

        requestId = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        final = frame[5] == 1;
        part = frame[StatusReplyHeaderLength..];
        return true;
    }
}
