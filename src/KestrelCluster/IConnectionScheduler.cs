// The public scheduling contract: which ready worker gets the next accepted connection.
using System.Net;

namespace KestrelCluster;

/// <summary>
/// Chooses the worker for each connection the primary accepts. Register an implementation in DI
/// (<c>services.AddSingleton&lt;IConnectionScheduler, MyScheduler&gt;()</c>) to replace the built-in policy
/// selected by <see cref="ClusterOptions.Scheduling"/>.
/// </summary>
/// <remarks>
/// <see cref="Choose"/> runs on the accept path, once per connection: keep it fast, allocation-free and
/// non-blocking. Calls may run concurrently (the primary may accept on several threads): state an
/// implementation keeps between calls must be safe for that, or be a hint whose races do no harm (as a
/// round-robin position is). The candidates are a snapshot taken for the call, valid only during it.
/// </remarks>
public interface IConnectionScheduler
{
    /// <summary>Chooses a worker for <paramref name="connection"/>.</summary>
    /// <param name="connection">The accepted connection.</param>
    /// <param name="candidates">
    /// The workers that can take it now — ready, serving its endpoint, under their in-flight limit — ordered by
    /// slot. Never empty.
    /// </param>
    /// <returns>The index of the chosen candidate, or -1 to keep the connection waiting until the candidates change.</returns>
    int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates);
}

/// <summary>An accepted connection waiting for a worker.</summary>
public readonly struct ScheduledConnection
{
    private readonly ISchedulableConnection _connection;

    internal ScheduledConnection(ISchedulableConnection connection) => _connection = connection;

    /// <summary>Describes a connection, for testing a scheduler.</summary>
    /// <param name="localEndPoint">The primary's endpoint the connection arrived on.</param>
    /// <param name="remoteEndPoint">The client's address and port.</param>
    public ScheduledConnection(EndPoint localEndPoint, EndPoint? remoteEndPoint)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        _connection = new Described(localEndPoint, remoteEndPoint);
    }

    /// <summary>The client's address and port (computed on first use).</summary>
    public EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>The primary's endpoint the connection arrived on.</summary>
    public EndPoint LocalEndPoint => _connection.LocalEndPoint;

    private sealed record Described(EndPoint LocalEndPoint, EndPoint? RemoteEndPoint) : ISchedulableConnection;
}

/// <summary>What the primary knows about a worker when it schedules a connection: a snapshot taken for that call.</summary>
/// <param name="workerId">The worker id.</param>
/// <param name="slotIndex">The worker's slot (kept by its replacement).</param>
/// <param name="handoffsInFlight">Connections handed to it and not yet acknowledged.</param>
/// <param name="openConnections">Connections it has accepted and not yet closed.</param>
public readonly struct WorkerCandidate(int workerId, int slotIndex, int handoffsInFlight, long openConnections)
{
    /// <summary>The worker id.</summary>
    public int WorkerId { get; } = workerId;

    /// <summary>The worker's slot (kept by its replacement).</summary>
    public int SlotIndex { get; } = slotIndex;

    /// <summary>Connections handed to it and not yet acknowledged.</summary>
    public int HandoffsInFlight { get; } = handoffsInFlight;

    /// <summary>Connections it has accepted and not yet closed.</summary>
    public long OpenConnections { get; } = openConnections;
}

/// <summary>What a scheduler may know of an accepted connection (the primary's implements it).</summary>
internal interface ISchedulableConnection
{
    EndPoint? RemoteEndPoint { get; }

    EndPoint LocalEndPoint { get; }
}
