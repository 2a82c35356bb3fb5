// The IClusterContext every role registers.
using Microsoft.Extensions.Options;

using KestrelCluster.Protocol;

namespace KestrelCluster;

internal sealed class ClusterContext : IClusterContext
{
    private ClusterContext(ClusterRole role, int? workerId, int? slotIndex, int workerCount)
    {
        Role = role;
        WorkerId = workerId;
        SlotIndex = slotIndex;
        _workerCount = workerCount;
    }

    public ClusterRole Role { get; }

    public int? WorkerId { get; }

    public int? SlotIndex { get; }

    /// <summary>In the primary, follows scaling; in a worker, the count when it was started.</summary>
    public int WorkerCount
    {
        get => Volatile.Read(ref _workerCount);
        internal set => Volatile.Write(ref _workerCount, value);
    }

    private int _workerCount;

    /// <summary>Whether this platform can pass sockets between processes the way the cluster needs (SCM_RIGHTS over
    /// SOCK_SEQPACKET).</summary>
    public static bool PlatformSupportsHandoff => PlatformProbe();

    /// <summary>The platform check (Linux, and the libc ABI the interop layer assumes); tests replace it to exercise the
    /// fallback.</summary>
    internal static Func<bool> PlatformProbe { get; set; } = static () => Interop.Libc.AbiMismatch is null;

    public static ClusterContext ForWorker(WorkerIdentity identity) =>
        new(ClusterRole.Worker, identity.WorkerId, identity.SlotIndex, identity.WorkerCount);

    /// <summary>Whether <c>dotnet watch</c> started this process (it sets DOTNET_WATCH=1 for the app it runs).</summary>
    public static bool UnderDotnetWatch => Environment.GetEnvironmentVariable("DOTNET_WATCH") == "1";

    /// <summary>Whether clustering is off because of dotnet watch (see ClusterOptions.WorkersUnderDotnetWatch).</summary>
    public static bool HeldBackByDotnetWatch(ClusterOptions options) => UnderDotnetWatch && !options.WorkersUnderDotnetWatch;

    public static ClusterContext ForPrimary(IOptions<ClusterOptions> options)
    {
        var workers = options.Value.Workers;
        return workers > 0 && PlatformSupportsHandoff && !HeldBackByDotnetWatch(options.Value)
            ? new ClusterContext(ClusterRole.Primary, null, null, workers)
            : new ClusterContext(ClusterRole.Standalone, null, null, 0);
    }

    public override string ToString() => Role == ClusterRole.Worker ? $"worker {WorkerId}" : Role.ToString().ToLowerInvariant();
}
