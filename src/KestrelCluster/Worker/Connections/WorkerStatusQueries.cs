// A worker's questions to its primary about the whole cluster (MapClusterStatus, the cluster health check): each
// query has an id, and the answer, JSON in one or more parts, completes it. A primary that does not answer in time
// fails the query, never the request pipeline.
using System.Collections.Concurrent;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerStatusQueries(Func<ReadOnlyMemory<byte>, bool> send)
{
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<int, Pending> _pending = new();
    private int _nextId;

    /// <summary>The cluster's status as the primary sees it, as UTF-8 JSON.</summary>
    public async Task<byte[]> QueryAsync(CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextId);
        var pending = new Pending();
        _pending[id] = pending;
        try
        {
            if (!send(ControlFrames.StatusQuery(id)))
            {
                throw new InvalidOperationException("This worker is not connected to its cluster primary.");
            }

            return await pending.Result.Task.WaitAsync(Timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"The cluster primary did not answer a status query within {Timeout}.", e);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>A StatusReply frame: false (a protocol violation) only when it does not parse or is too large.</summary>
    public bool OnReply(ReadOnlySpan<byte> frame)
    {
        if (!ControlFrames.TryReadStatusReply(frame, out var id, out var final, out var part))
        {
            return false;
        }

        if (!_pending.TryGetValue(id, out var pending))
        {
            return true; // nobody waits for it any more (timed out, or cancelled)
        }

        if (pending.Buffer.Length + part.Length > ControlFrames.MaxStatusLength)
        {
            return false;
        }

        pending.Buffer.Write(part);
        if (final)
        {
            pending.Result.TrySetResult(pending.Buffer.ToArray());
        }

        return true;
    }

    /// <summary>The primary is gone: every query fails now.</summary>
    public void FailAll(string reason)
    {
        foreach (var pending in _pending.Values)
        {
            pending.Result.TrySetException(new InvalidOperationException($"The cluster primary is gone: {reason}."));
        }
    }

    private sealed class Pending
    {
        public MemoryStream Buffer { get; } = new();

        public TaskCompletionSource<byte[]> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
