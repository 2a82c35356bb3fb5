// The primary upgrade's contract between two primaries, which may be built from different KestrelCluster versions: the
// running primary (the old one) starts the new one with an invitation in its environment, and the new one connects to
// the upgrade socket it names (AF_UNIX SOCK_SEQPACKET, in the old primary's private runtime directory).
//
//   new → old  UpgradeHello      upgrade protocol version, the invitation's secret
//   old → new  UpgradeAccepted   or UpgradeRefused (a reason), and the old primary hangs up
//   new → old  Register          an endpoint the new primary's Kestrel binds (the control channel's frame)
//   old → new  Registered        the old listener's id and bound endpoint, with its listening socket attached; id 0: none
//   new → old  Ready             every worker ready, and the new primary accepting on the sockets
//   old → new  TakeOver          the old primary has stopped accepting: the new one is the primary now
//   old → new  Handoff           connections the old primary accepted and never handed to a worker (the control
//                                channel's frame, listener ids the old primary's), until it exits
//
// Raise Version with any change to these frames or to the invitation. A primary speaks only its own version; two builds
// that differ fall back to a restart (the refusal says so).
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace KestrelCluster.Protocol;

internal static class UpgradeProtocol
{
    public const int Version = 1;

    public const string SocketVariable = "KESTRELCLUSTER_UPGRADE_SOCKET";
    public const string SecretVariable = "KESTRELCLUSTER_UPGRADE_SECRET";
    public const string FromProcessIdVariable = "KESTRELCLUSTER_UPGRADE_FROM";
    public const string LastWorkerIdVariable = "KESTRELCLUSTER_UPGRADE_LAST_WORKER";

    public static byte[] Hello(ReadOnlySpan<byte> secret)
    {
        var frame = new byte[1 + sizeof(int) + ControlFrames.SecretLength];
        frame[0] = (byte)FrameType.UpgradeHello;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), Version);
        secret.CopyTo(frame.AsSpan(1 + sizeof(int)));
        return frame;
    }

    /// <summary>Reads an UpgradeHello of any length: its version (-1 if it is none), and its secret when the version is this one.</summary>
    public static int ReadHello(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> secret)
    {
        secret = default;
        if (frame.Length < 1 + sizeof(int) || frame[0] != (byte)FrameType.UpgradeHello)
        {
            return -1;
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(frame[1..]);
        if (version == Version && frame.Length == 1 + sizeof(int) + ControlFrames.SecretLength)
        {
            secret = frame[(1 + sizeof(int))..];
        }

        return version;
    }

    public static byte[] Accepted() => [(byte)FrameType.UpgradeAccepted];

    public static byte[] TakeOver() => [(byte)FrameType.TakeOver];

    public static byte[] Refused(string reason)
    {
        var text = reason.Length > 1000 ? reason[..1000] : reason;
        return [(byte)FrameType.UpgradeRefused, .. Encoding.UTF8.GetBytes(text)];
    }

    public static string ReadRefused(ReadOnlySpan<byte> frame) => Encoding.UTF8.GetString(frame[1..]);
}

/// <summary>
/// What a new primary finds in its environment when an old one started it to take over: the upgrade socket, the secret
/// that proves the invitation, the old primary's pid, and the last worker id it used (the new primary's workers are
/// numbered on from it, so the log of the two never names two workers alike). Read once and removed, so its own workers
/// never see it.
/// </summary>
internal sealed record UpgradeInvitation(string SocketPath, byte[] Secret, int FromProcessId, int LastWorkerId)
{
    private static readonly Lazy<UpgradeInvitation?> s_current = new(ReadAndClearEnvironment);

    /// <summary>The invitation this process was started with; null for a primary started by anyone else.</summary>
    public static UpgradeInvitation? Current => s_current.Value;

    public IReadOnlyDictionary<string, string> ToEnvironment() => new Dictionary<string, string>
    {
        [UpgradeProtocol.SocketVariable] = SocketPath,
        [UpgradeProtocol.SecretVariable] = Convert.ToBase64String(Secret),
        [UpgradeProtocol.FromProcessIdVariable] = FromProcessId.ToString(CultureInfo.InvariantCulture),
        [UpgradeProtocol.LastWorkerIdVariable] = LastWorkerId.ToString(CultureInfo.InvariantCulture),
    };

    private static UpgradeInvitation? ReadAndClearEnvironment()
    {
        var path = Environment.GetEnvironmentVariable(UpgradeProtocol.SocketVariable);
        var secret = Environment.GetEnvironmentVariable(UpgradeProtocol.SecretVariable);
        var from = Environment.GetEnvironmentVariable(UpgradeProtocol.FromProcessIdVariable);
        var lastWorker = Environment.GetEnvironmentVariable(UpgradeProtocol.LastWorkerIdVariable);
        foreach (var name in (ReadOnlySpan<string>)[UpgradeProtocol.SocketVariable, UpgradeProtocol.SecretVariable,
            UpgradeProtocol.FromProcessIdVariable, UpgradeProtocol.LastWorkerIdVariable])
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        if (string.IsNullOrEmpty(path))
        {
            return null;
        }

        try
        {
            var bytes = Convert.FromBase64String(secret ?? "");
            var fromProcessId = int.Parse(from ?? "", NumberStyles.None, CultureInfo.InvariantCulture);
            var lastWorkerId = int.Parse(lastWorker ?? "", NumberStyles.None, CultureInfo.InvariantCulture);
            return bytes.Length == ControlFrames.SecretLength
                ? new UpgradeInvitation(path, bytes, fromProcessId, lastWorkerId)
                : throw new FormatException($"{UpgradeProtocol.SecretVariable} is not a {ControlFrames.SecretLength}-byte secret.");
        }
        catch (FormatException e)
        {
            throw new InvalidOperationException($"{UpgradeProtocol.SocketVariable} is set, so this process was started to take over " +
                "from a running primary, but the rest of its upgrade environment is malformed. A primary sets these variables for " +
                "the primary it starts on SIGUSR2; do not set them by hand.", e);
        }
    }
}
