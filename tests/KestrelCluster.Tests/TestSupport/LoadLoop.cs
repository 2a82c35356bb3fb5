// A bounded load against a cluster while something happens to it (restart, recycle, a worker dying): several
// loops of requests on new connections (the handoff path), one keep-alive HttpClient, and one raw keep-alive client
// that, as wrk does, sends its next request the moment a response is in and never retries (a connection closed under a
// request is a failure; it reconnects only when a response says Connection: close), until stopped or for at most two
// minutes. It counts every request that did not get a 200 from a worker.
using System.Collections.Concurrent;
using System.Net;

namespace KestrelCluster.Tests.TestSupport;

internal sealed class LoadLoop
{
    private static readonly TimeSpan s_maxDuration = TimeSpan.FromMinutes(2);

    /// <summary>Raw keep-alive connections, each on a connection of its own.</summary>
    private const int RawKeepAliveClients = 2;

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
            loops.AddRange(Enumerable.Range(0, RawKeepAliveClients).Select(_ => Task.Run(() => RawKeepAliveAsync(endpoint))));
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

    private async Task RawKeepAliveAsync(IPEndPoint endpoint)
    {
        var request = System.Text.Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        while (!_stop.IsCancellationRequested)
        {
            using var socket = new System.Net.Sockets.Socket(endpoint.AddressFamily, System.Net.Sockets.SocketType.Stream,
                System.Net.Sockets.ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(endpoint, _stop.Token);
                var reader = new RawResponseReader(socket);
                var close = false;
                while (!close && !_stop.IsCancellationRequested)
                {
                    await socket.SendAsync(request, _stop.Token);
                    var (head, body) = await reader.ReadAsync(_stop.Token);
                    close = head.Contains("\r\nConnection: close", StringComparison.OrdinalIgnoreCase);
                    Record(head + "\r\n\r\n" + body);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException)
            {
                _failures.Enqueue($"raw keep-alive: {e.GetType().Name}: {e.Message}");
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

    /// <summary>Reads HTTP/1.1 responses (Content-Length or chunked) off one connection; IOException if it ends under one.</summary>
    private sealed class RawResponseReader(System.Net.Sockets.Socket socket)
    {
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _start;
        private int _end;

        public async Task<(string Head, string Body)> ReadAsync(CancellationToken cancellationToken)
        {
            var head = await ReadUntilAsync("\r\n\r\n", cancellationToken);
            var lengthHeader = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            if (lengthHeader is not null)
            {
                return (head, await ReadExactlyAsync(int.Parse(lengthHeader[15..].Trim(), System.Globalization.CultureInfo.InvariantCulture),
                    cancellationToken));
            }

            var body = new System.Text.StringBuilder();
            while (true)
            {
                var size = Convert.ToInt32((await ReadUntilAsync("\r\n", cancellationToken)).Trim(), 16);
                body.Append(await ReadExactlyAsync(size, cancellationToken));
                await ReadExactlyAsync(2, cancellationToken);
                if (size == 0)
                {
                    return (head, body.ToString());
                }
            }
        }

        private async Task<string> ReadUntilAsync(string end, CancellationToken cancellationToken)
        {
            while (true)
            {
                var text = System.Text.Encoding.ASCII.GetString(_buffer, _start, _end - _start);
                var at = text.IndexOf(end, StringComparison.Ordinal);
                if (at >= 0)
                {
                    _start += at + end.Length;
                    return text[..at];
                }

                await FillAsync(cancellationToken);
            }
        }

        private async Task<string> ReadExactlyAsync(int count, CancellationToken cancellationToken)
        {
            while (_end - _start < count)
            {
                await FillAsync(cancellationToken);
            }

            var text = System.Text.Encoding.ASCII.GetString(_buffer, _start, count);
            _start += count;
            return text;
        }

        private async Task FillAsync(CancellationToken cancellationToken)
        {
            if (_start > 0)
            {
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                (_end, _start) = (_end - _start, 0);
            }

            var read = await socket.ReceiveAsync(_buffer.AsMemory(_end), System.Net.Sockets.SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new IOException("the server closed the connection under a request");
            }

            _end += read;
        }
    }
}
