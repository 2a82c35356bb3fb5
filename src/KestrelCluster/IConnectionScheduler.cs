// The public scheduling contract: which ready worker gets the next accepted connection.
using System.Net;

namespace KestrelCluster;

/// <summary>
/// Chooses the worker for each connection the primary accepts. Register an implementation in DI
/// (<c>services.AddSingleton&lt;IConnectionScheduler, MyScheduler&gt;()</c>) to replace the built-in policy
/// selected by <see cref="ClusterOptions.Scheduling"/>. Called on the accept path under the dispatcher's lock:
/// keep it fast, allocation-free and non-blocking.
/// </summary>
public interface IConnectionScheduler
{
    /// <summary>Chooses a worker for <paramref name="connection"/>.</summary>
    /// <param name="connection">The accepted connection.</param>
    /// <param name="candidates">
    /// The workers that can take it now — ready, serving its endpoint, under their in-flight limit — ordered by
    /// slot. Never empty.
    /// </param>
    /// <returns>The index of the chosen candidate, or -1 to keep the connection waiting until the candidates change.</returns>
    int Choose(in ScheduledConnection connection, IReadOnlyList<WorkerCandidate> candidates);
}

/// <summary>An accepted connection waiting for a worker.</summary>
public readonly struct ScheduledConnection
{
    private readonly ISchedulableConnection _connection;

    internal ScheduledConnection(ISchedulableConnection connection) => _connection = connection;

    /// <summary>The client's address and port (computed on first use).</summary>
    public EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>The primary's endpoint the connection arrived on.</summary>
    public EndPoint LocalEndPoint => _connection.LocalEndPoint;
}

/// <summary>What the primary knows about a worker when scheduling; the values are live.</summary>
public sealed class WorkerCandidate
{
    private readonly ISchedulableWorker _channel;

    internal WorkerCandidate(ISchedulableWorker channel) => _channel = channel;

    /// <summary>The worker id.</summary>
    public int WorkerId => _channel.WorkerId;

    /// <summary>The worker's slot (kept by its replacement).</summary>
    public int SlotIndex => _channel.SlotIndex;

    /// <summary>Connections handed to it and not yet acknowledged.</summary>
    public int HandoffsInFlight => _channel.InFlightCount;

    /// <summary>Connections it has accepted and not yet closed.</summary>
    public long OpenConnections => _channel.OpenConnections;

    internal ISchedulableWorker Channel => _channel;
}

/// <summary>What a scheduler may know of an accepted connection (the primary's implements it).</summary>
internal interface ISchedulableConnection
{
    EndPoint? RemoteEndPoint { get; }

    EndPoint LocalEndPoint { get; }
}

/// <summary>What a scheduler may know of a worker (the primary's channel to it implements it).</summary>
internal interface ISchedulableWorker
{
    int WorkerId { get; }

    int SlotIndex { get; }

    int InFlightCount { get; }

    long OpenConnections { get; }
}
