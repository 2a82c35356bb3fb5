// The version of the control protocol: the Hello frame and the worker environment contract carry it, so that a
// primary and a worker built from different KestrelCluster versions (after a deploy, a rolling restart re-launches
// workers from the new build while the old primary runs on) refuse each other with a clear reason instead of
// misreading frames. Raise Version with any change to a frame's layout or meaning, or to the environment contract.
using System.Reflection;

namespace KestrelCluster.Protocol;

internal static class ControlProtocol
{
    /// <summary>
    /// This build's control protocol. 0 is the unversioned protocol of KestrelCluster 0.4.0-preview.1 and before (a
    /// 37-byte Hello, no <see cref="VersionVariable"/>); 2 added the FdLimit frame, 3 the EndWarmUp frame.
    /// </summary>
    public const int Version = 3;

    /// <summary>
    /// Fds a worker keeps free beside its connections: it refuses a handed-off socket whose fd number is this close to its
    /// open-files limit (fds are allocated lowest first, so fd n means n fds are open below it), and the runtime, the app
    /// and Kestrel keep room for what they open themselves. The primary reckons with it when it checks the limit.
    /// </summary>
    public const int WorkerFdReserve = 64;

    /// <summary>
    /// The exit code of a worker that does not start because its primary speaks another protocol (EX_CONFIG, from
    /// sysexits.h: the deployment is misconfigured, not the app broken).
    /// </summary>
    public const int MismatchExitCode = 78;

    /// <summary>The worker environment variable with the primary's protocol version.</summary>
    public const string VersionVariable = "KESTRELCLUSTER_PROTOCOL";

    /// <summary>This build's KestrelCluster version, for people reading a refusal.</summary>
    public static string LibraryVersion { get; } =
        typeof(ControlProtocol).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "unknown";

    /// <summary>Why a primary of this build refuses a worker that speaks <paramref name="workerVersion"/>.</summary>
    public static string WorkerMismatch(int workerVersion) =>
        $"it speaks control protocol {workerVersion}, this primary {Version} (KestrelCluster {LibraryVersion}): the app it was " +
        $"started from was built with {(workerVersion > Version ? "a newer" : "an older")} KestrelCluster than this primary. " +
        "Upgrade the primary (kill -USR2 it, or restart it) to run that build; the running workers keep serving";

    /// <summary>Why a worker of this build does not start under a primary that speaks <paramref name="primaryVersion"/>.</summary>
    public static string PrimaryMismatch(int primaryVersion) =>
        $"This worker speaks control protocol {Version} (KestrelCluster {LibraryVersion}), and the primary that started it " +
        $"{primaryVersion}{(primaryVersion == 0 ? " (KestrelCluster 0.4.0-preview.1 or before)" : "")}: the app on disk was built " +
        $"with {(primaryVersion < Version ? "a newer" : "an older")} KestrelCluster than the running primary. Upgrade the " +
        "primary (kill -USR2 it, or restart it) to run this build; the running workers keep serving.";
}

/// <summary>A worker started by a primary of another control protocol (<see cref="ControlProtocol.PrimaryMismatch"/>).</summary>
internal sealed class ControlProtocolMismatchException(string message) : InvalidOperationException(message);
