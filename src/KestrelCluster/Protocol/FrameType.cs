// The frame types of the control channel between the primary and its workers, and of the upgrade socket between two
// primaries (which reuses Register, Registered, Ready and Handoff).
namespace KestrelCluster.Protocol;

/// <summary>
/// First byte of every control-channel message. The channel is an AF_UNIX SOCK_SEQPACKET socket: the kernel
/// keeps message boundaries, so the message length is the frame length and no length prefix is needed, and a
/// plain message is never merged into the next fd-carrying one (which SOCK_STREAM does). Measured here
/// (benchmarks/, HandoffBenchmark): ~450k fds/s at one fd per message, ~2.1M at 16. Connections that arrive
/// together travel together (a Handoff frame carries up to 64 fds), and acknowledgements are batched the same way.
/// </summary>
internal enum FrameType : byte
{
    /// <summary>Worker → primary, first frame: worker id and the one-time secret from its environment.</summary>
    Hello = 1,

    /// <summary>Worker → primary: Kestrel asked the worker to bind an endpoint; which primary listener is it?</summary>
    Register = 2,

    /// <summary>Primary → worker: the answer to <see cref="Register"/>: listener id and real bound endpoint, or an error.</summary>
    Registered = 3,

    /// <summary>Worker → primary: the app has started; route connections here.</summary>
    Ready = 4,

    /// <summary>Primary → worker: accepted sockets, one entry (listener id, handoff id, …) per fd in the ancillary data.</summary>
    Handoff = 5,

    /// <summary>Worker → primary: Kestrel took (or the worker refused) a handed-off socket; the primary may now close its copy.</summary>
    Ack = 6,

    /// <summary>Worker → primary: Kestrel unbound a listener; stop routing its connections here.</summary>
    Unregister = 7,

    /// <summary>Primary → worker: stop gracefully (drain, then exit).</summary>
    Stop = 8,

    /// <summary>Worker → primary, every heartbeat interval: alive, with requests served, memory and thread-pool lag.</summary>
    Heartbeat = 9,

    /// <summary>Worker → primary: this many of its connections closed since the last such frame (least-connections).</summary>
    ConnectionsClosed = 10,

    /// <summary>Either way: an application message (IClusterMessenger).</summary>
    Message = 11,

    /// <summary>Worker → primary: what is the status of the cluster? (MapClusterStatus, the cluster health check.)</summary>
    StatusQuery = 12,

    /// <summary>Primary → worker: the answer to <see cref="StatusQuery"/>, UTF-8 JSON in one or more parts, the last one marked.</summary>
    StatusReply = 13,

    /// <summary>
    /// Worker → primary: it is at its open-files limit (the limit follows): the connections it could not take it refused
    /// (the primary routes them on), and it wants none until it has closed some.
    /// </summary>
    FdLimit = 14,

    /// <summary>
    /// Primary → worker: connections are waiting and no worker is ready to take them: end the warm-up now (or skip it) and
    /// report ready. A warm-up makes a worker fast; it must never leave the cluster with nobody serving.
    /// </summary>
    EndWarmUp = 15,

    /// <summary>New primary → old (the upgrade socket, Protocol/UpgradeProtocol.cs): upgrade protocol version and secret.</summary>
    UpgradeHello = 20,

    /// <summary>Old primary → new: the hello is accepted; ask for the listening sockets.</summary>
    UpgradeAccepted = 21,

    /// <summary>Old primary → new: the upgrade is refused, and why (UTF-8).</summary>
    UpgradeRefused = 22,

    /// <summary>Old primary → new: it has stopped accepting; the new primary is the primary now.</summary>
    TakeOver = 23,
}
