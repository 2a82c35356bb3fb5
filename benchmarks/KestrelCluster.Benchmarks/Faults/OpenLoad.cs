// The fault lab's load: an open-loop generator at a constant rate. Request i is due at start + i / rate whatever
// happened to the ones before it, and its latency runs from that intended instant (no coordinated omission: a stalled
// server is charged for the requests it kept waiting, not only for the one it stalled). Clients behave as real ones:
// keep-alive connections, a share of requests on a new connection (Connection: close), a reconnect after any error, and
// a timeout (from the intended instant) after which a request counts as failed.
using System.Diagnostics;

namespace KestrelCluster.Benchmarks.Faults;

internal sealed record LoadPlan(int Port, double Rate, TimeSpan Duration, int Connections, double NewConnectionShare, TimeSpan Timeout);

/// <summary>What a load run saw: per request its completion time (from the start) and outcome, and the latency histogram.</summary>
internal sealed class LoadRecord
{
    public LoadRecord(int requests)
    {
        Completed = new TimeSpan[requests];
        Succeeded = new bool[requests];
    }

    public TimeSpan[] Completed { get; }

    public bool[] Succeeded { get; }

    public LatencyHistogram Latency { get; } = new();
}

internal static class OpenLoad
{
    public static async Task<LoadRecord> RunAsync(LoadPlan plan, CancellationToken cancellationToken = default)
    {
        var total = (int)(plan.Rate * plan.Duration.TotalSeconds);
        var record = new LoadRecord(total);
        var next = -1;
        var clock = Stopwatch.StartNew();
        var latencyLock = new object();

        async Task ClientAsync(int seed)
        {
            using var connection = new LabConnection(plan.Port);
            var random = new Random(seed);
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= total || cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                var intended = TimeSpan.FromSeconds(i / plan.Rate);
                if (intended - clock.Elapsed is { TotalMilliseconds: > 1 } wait)
                {
                    await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                }

                // A request has Timeout from its intended instant: one that waited that long for a client failed unsent
                // (as a real client's would have), so a server that hangs never stretches the run.
                var left = intended + plan.Timeout - clock.Elapsed;
                var ok = false;
                if (left > TimeSpan.Zero)
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(left);
                    ok = await connection.GetAsync("/", random.NextDouble() < plan.NewConnectionShare, timeout.Token).ConfigureAwait(false);
                }

                var completed = ok ? clock.Elapsed : TimeSpan.FromTicks(Math.Min(clock.Elapsed.Ticks, (intended + plan.Timeout).Ticks));
                record.Completed[i] = completed;
                record.Succeeded[i] = ok;
                if (ok)
                {
                    lock (latencyLock)
                    {
                        record.Latency.Record((long)(completed - intended).TotalMicroseconds);
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, plan.Connections).Select(c => Task.Run(() => ClientAsync(c), CancellationToken.None)));
        return record;
    }

    /// <summary>
    /// Closed-loop clients of <paramref name="path"/> (each sends its next request when the last is answered) until
    /// <paramref name="until"/>: the lab's background fault traffic, never measured.
    /// </summary>
    public static Task BackgroundAsync(int port, string path, int clients, CancellationToken until) =>
        Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            using var connection = new LabConnection(port);
            while (!until.IsCancellationRequested)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(until);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                if (!await connection.GetAsync(path, closeAfter: false, timeout.Token).ConfigureAwait(false) && !until.IsCancellationRequested)
                {
                    await Task.Delay(10, CancellationToken.None).ConfigureAwait(false); // a refused connection: no busy loop
                }
            }
        }, CancellationToken.None)));
}
