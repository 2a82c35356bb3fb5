// The frames a worker reports with, and the app's messages: Heartbeat, ConnectionsClosed, Message.
using System.Buffers.Binary;

namespace KestrelCluster.Protocol;

internal static partial class ControlFrames
{
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

    public const int HeartbeatLength = 1 + sizeof(long) + sizeof(long) + sizeof(int) + sizeof(int) + sizeof(long) + sizeof(long);

    public static int WriteHeartbeat(Span<byte> destination, in WorkerHeartbeat heartbeat)
    {
        destination[0] = (byte)FrameType.Heartbeat;
        BinaryPrimitives.WriteInt64LittleEndian(destination[1..], heartbeat.Requests);
        BinaryPrimitives.WriteInt64LittleEndian(destination[9..], heartbeat.WorkingSetBytes);
        BinaryPrimitives.WriteInt32LittleEndian(destination[17..], heartbeat.ThreadPoolLagMilliseconds);
        BinaryPrimitives.WriteInt32LittleEndian(destination[21..], heartbeat.PendingWorkItems);
        BinaryPrimitives.WriteInt64LittleEndian(destination[25..], heartbeat.CpuTime.Ticks);
        BinaryPrimitives.WriteInt64LittleEndian(destination[33..], heartbeat.GcHeapBytes);
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
            BinaryPrimitives.ReadInt32LittleEndian(frame[21..]),
            TimeSpan.FromTicks(BinaryPrimitives.ReadInt64LittleEndian(frame[25..])),
            BinaryPrimitives.ReadInt64LittleEndian(frame[33..]));
        return heartbeat.Requests >= 0 && heartbeat.WorkingSetBytes >= 0 && heartbeat.ThreadPoolLagMilliseconds >= 0
            && heartbeat.PendingWorkItems >= 0 && heartbeat.CpuTime >= TimeSpan.Zero && heartbeat.GcHeapBytes >= 0;
    }
}
