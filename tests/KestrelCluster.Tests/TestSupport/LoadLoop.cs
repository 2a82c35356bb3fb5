// A bounded load against a cluster while something happens to it (restart, recycle, a worker dying): several
// loops of requests on new connections (the handoff path) and one keep-alive client, until stopped or for at
// most two minutes. It counts every request that did not get a 200 from a worker.
using System.Collections.Concurrent;
using System.Net;

namespace KestrelCluster.Tests.TestSupport;

internal sealed class LoadLoop
{
    private static readonly TimeSpan s_maxDuration = TimeSpan.FromMinutes(2);

    private readonly CancellationTokenSource _stop = new(s_maxDuration);
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentDictionary<int, int> _servedBy = new();
    private readonly Task _loops;
    private int _succeeded;

    private LoadLoop(IPEndPoint endpoint, int newConnectionLoops, bool keepAlive)
    {
        var loops = Enumerable.Range(0, newConnectionLoops).Select(_ => Task.Run(() => NewConnectionsAsync(endpoint))).ToList();
        if (keepAlive)
        {
            loops.Add(Task.Run(() => KeepAliveAsync(endpoint)));
        }

        _loops = Task.WhenAll(loops);
    }

    public int Succeeded => Volatile.Read(ref _succeeded);

    public IReadOnlyCollection<string> Failures => _failures;

    /// <summary>Process ids that served at least one request.</summary>
    public IReadOnlyCollection<int> ServedBy => [.. _servedBy.Keys];

    public static LoadLoop Start(IPEndPoint endpoint, int newConnectionLoops = 3, bool keepAlive = true) => new(endpoint, newConnectionLoops, keepAlive);

    /// <summary>Waits until <paramref name="count"/> more requests have succeeded.</summary>
    public Task WaitForMoreAsync(int count)
    {
        var target = Succeeded + count;
        return Wait.UntilAsync(() => Succeeded >= target || _stop.IsCancellationRequested, TimeSpan.FromSeconds(60), $"{count} more requests succeed");
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await _loops.WaitAsync(TimeSpan.FromSeconds(60));
    }

    private async Task NewConnectionsAsync(IPEndPoint endpoint)
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                Record(await HttpProbe.NewConnectionRequestAsync(endpoint));
            }
            catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                _failures.Enqueue($"new connection: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    private async Task KeepAliveAsync(IPEndPoint endpoint)
    {
        using var client = HttpProbe.CreateClient();
        var url = $"http://{endpoint}/";
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                Record("HTTP/1.1 200 \r\n\r\n" + await client.GetStringAsync(url));
            }
            catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                _failures.Enqueue($"keep-alive: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    private void Record(string response)
    {
        if (response.StartsWith("HTTP/1.1 200", StringComparison.Ordinal) && response.Contains(" pid ", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _succeeded);
            _servedBy.AddOrUpdate(HttpProbe.ServedBy(response), 1, (_, n) => n + 1);
        }
        else
        {
            _failures.Enqueue($"unexpected response: {response[..Math.Min(response.Length, 200)]}");
        }
    }
}
