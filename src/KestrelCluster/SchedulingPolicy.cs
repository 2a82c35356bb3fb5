// The built-in scheduling policies, chosen with Cluster:Scheduling.
namespace KestrelCluster;

/// <summary>How the primary spreads connections over the workers.</summary>
public enum SchedulingPolicy
{
    /// <summary>Each ready worker in turn (Node's SCHED_RR). Even spread of connections.</summary>
    RoundRobin,

    /// <summary>The worker with the fewest open connections (ties in turn): for long-lived connections.</summary>
    LeastConnections,

    /// <summary>
    /// Sticky: the same client address goes to the same worker slot while it is ready (rendezvous hashing), so
    /// SignalR negotiate + connect and long polling work without a backplane; scaling moves as few clients as possible.
    /// </summary>
    ClientIpHash,

    /// <summary>
    /// Node's SCHED_NONE: the listening socket itself is handed to every worker and the workers accept; the
    /// kernel balances. Highest connection rate, uneven spread, and no per-connection routing by the primary.
    /// </summary>
    Shared,

    /// <summary>
    /// nginx's reuseport: the primary binds one SO_REUSEPORT listening socket per worker slot and each worker accepts on its
    /// slot's; the kernel spreads new connections by a hash of the client's address and port. One process's CPU per new
    /// connection; while a slot has no ready worker the primary accepts on its socket and hands the connections on, so
    /// nothing queued there is lost. TCP endpoints only (others are scheduled round-robin).
    /// </summary>
    ReusePort,
}
