// Encoding and strict decoding of control-channel frames. Every length is bounded and every frame is checked
// against its exact shape: a frame that does not parse is a protocol violation and costs the sender its channel.
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Protocol;

internal static partial class ControlFrames
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

    /// <summary>The unversioned Hello of protocol 0: type, worker id, secret.</summary>
    private const int UnversionedHelloLength = 1 + sizeof(int) + SecretLength;

    /// <summary>
    /// A worker's first frame: type, protocol version, worker id, secret. Type and version come first in every version
    /// (protocol 0 had no version: its Hello is 37 bytes), so any primary can tell which protocol a worker speaks.
    /// </summary>
    public static byte[] Hello(int workerId, ReadOnlySpan<byte> secret, int version = ControlProtocol.Version)
    {
        if (secret.Length != SecretLength)
        {
            throw new ArgumentException($"The secret must be {SecretLength} bytes.", nameof(secret));
        }

        var frame = new byte[1 + sizeof(int) + sizeof(int) + SecretLength];
        frame[0] = (byte)FrameType.Hello;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), version);
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1 + sizeof(int)), workerId);
        secret.CopyTo(frame.AsSpan(1 + (2 * sizeof(int))));
        return frame;
    }

    /// <summary>The protocol version of a Hello frame of any version (0 for the unversioned one); false if it is no Hello.</summary>
    public static bool TryReadHelloVersion(ReadOnlySpan<byte> frame, out int version)
    {
        version = 0;
        if (frame.Length < 1 + sizeof(int) || frame[0] != (byte)FrameType.Hello)
        {
            return false;
        }

        version = frame.Length == UnversionedHelloLength ? 0 : BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        return version >= 0;
    }

    public static byte[] Register(int requestId, EndPoint endpoint) =>
        WithText(FrameType.Register, requestId, 0, EndpointText.Format(endpoint), sizeof(int));

    public static byte[] Registered(int requestId, int listenerId, string endpointOrError) =>
        WithText(FrameType.Registered, requestId, listenerId, endpointOrError, 2 * sizeof(int));

    public static byte[] Ready() => [(byte)FrameType.Ready];

    public static byte[] Stop() => [(byte)FrameType.Stop];

    public static byte[] EndWarmUp() => [(byte)FrameType.EndWarmUp];

    public static byte[] Unregister(int listenerId)
    {
        var frame = new byte[1 + sizeof(int)];
        frame[0] = (byte)FrameType.Unregister;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), listenerId);
        return frame;
    }

    public static bool TryReadHello(ReadOnlySpan<byte> frame, out int workerId, out ReadOnlySpan<byte> secret)
    {
        workerId = 0;
        secret = default;
        if (frame.Length != 1 + (2 * sizeof(int)) + SecretLength || !TryReadHelloVersion(frame, out var version)
            || version != ControlProtocol.Version)
        {
            return false;
        }

        workerId = BinaryPrimitives.ReadInt32LittleEndian(frame[(1 + sizeof(int))..]);
        secret = frame.Slice(1 + (2 * sizeof(int)), SecretLength);
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
/// <param name="CpuTime">Its total processor time so far (two beats make a CPU percentage).</param>
/// <param name="GcHeapBytes">Its managed heap (GC.GetTotalMemory).</param>
internal readonly record struct WorkerHeartbeat(long Requests, long WorkingSetBytes, int ThreadPoolLagMilliseconds, int PendingWorkItems,
    TimeSpan CpuTime = default, long GcHeapBytes = 0);

/// <summary>The text form of the endpoints the control channel talks about: <c>tcp:127.0.0.1:80</c>, <c>tcp:[::]:80</c>,
/// <c>unix:/path</c>.</summary>
internal static class EndpointText
{
    public static string Format(EndPoint endpoint) => endpoint switch
    {
        IPEndPoint ip => "tcp:" + ip,
        UnixDomainSocketEndPoint unix => "unix:" + unix,
        Microsoft.AspNetCore.Connections.FileHandleEndPoint handle => "fd:" + handle.FileHandle.ToString(CultureInfo.InvariantCulture),
        _ => throw new NotSupportedException($"Endpoint type {endpoint.GetType().Name} cannot be handed over."),
    };

    public static bool TryParse(string text, out EndPoint? endpoint)
    {
        endpoint = null;
        if (text.StartsWith("tcp:", StringComparison.Ordinal) && IPEndPoint.TryParse(text.AsSpan(4), out var ip))
        {
            endpoint = ip;
        }
        else if (text.StartsWith("fd:", StringComparison.Ordinal)
            && ulong.TryParse(text.AsSpan(3), NumberStyles.None, CultureInfo.InvariantCulture, out var handle))
        {
            // A socket-activated listener, named as both sides' Kestrel name it (UseSystemd: ListenHandle(3), …).
            endpoint = new Microsoft.AspNetCore.Connections.FileHandleEndPoint(handle,
                Microsoft.AspNetCore.Connections.FileHandleType.Auto);
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
