// Cluster:WarmUpPath: before a worker reports ready, it sends itself requests over its own first endpoint until its JIT
// has settled, so the request path of this process is compiled before the primary routes a connection here. Every
// process compiles its own code: without this, each new worker (start, crash replacement, rolling restart, recycle)
// serves its first seconds slowly, and on shared cores its compilation takes CPU from the workers that are serving.
//
// The requests travel the way real ones do, the handoff included: each connection is a loopback TCP connection the
// worker makes to a listening socket of its own, whose accepted end goes into the endpoint's listener as a handed-off
// socket would (WorkerConnectionListener.TryEnqueueWarmUp: never acknowledged to the primary or counted by it). The
// protocol is found by trying: HTTP/1.1, then TLS (any certificate accepted: it is this process), then HTTP/2. Meanwhile
// only warnings and errors are logged (WarmUpLogFilter), and requests are not counted for recycling.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;
using KestrelCluster.Worker.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Worker.Lifecycle;

internal sealed class WorkerWarmUp(WorkerControlChannel channel, WorkerIdentity identity,
    IOptions<ClusterOptions> options, ILoggerFactory loggers)
{
    // The category predates the rooms (Worker/Connections, Worker/Lifecycle); filters and docs name it.
    private readonly ILogger _logger = loggers.CreateLogger("KestrelCluster.Worker.WorkerWarmUp");

    private static volatile bool s_inProgress;
    private static volatile bool s_probing;

    /// <summary>
    /// While it is true, only warnings and errors are logged (WarmUpLogFilter) and requests are not counted
    /// (WorkerRequestCounter): nothing but the warm-up reaches a worker before it is ready.
    /// </summary>
    public static bool InProgress
    {
        get => s_inProgress;
        private set => s_inProgress = value;
    }

    /// <summary>
    /// While the protocol is being found, nothing is logged: the wrong guesses make Kestrel log errors (HTTP/1.1 on an
    /// HTTP/2-only TLS endpoint, say) that are this process talking to itself.
    /// </summary>
    public static bool Probing
    {
        get => s_probing;
        private set => s_probing = value;
    }

    /// <summary>The header every warm-up request carries, so that the app (its logs, its metrics) can tell them apart.</summary>
    public const string HeaderName = "KestrelCluster-Warm-Up";

    /// <summary>Concurrent connections: enough to warm the paths that only concurrency takes, few enough for any machine.</summary>
    private const int Loops = 4;

    /// <summary>
    /// The pause after each request of a loop: the JIT needs calls, not throughput. Unpaced, the loops took whole cores
    /// from the workers serving beside a rolling restart's new one (measured: throughput during a restart 0.55x of
    /// before it, against 0.72x without warm-up); paced, 4 loops stay near 4,000 requests a second.
    /// </summary>
    private static readonly TimeSpan s_pace = TimeSpan.FromMilliseconds(1);

    /// <summary>Every this many requests a loop asks for Connection: close: the new-connection path warms up too.</summary>
    private const int CloseEvery = 8;

    /// <summary>
    /// The JIT has settled when, in each of <see cref="SettledWindows"/> windows this long in a row, compiling took at most
    /// <see cref="SettledJitShare"/> of the time. Not "no method compiled": a serving process never stops compiling
    /// entirely (measured under steady load, plain Kestrel too: 35 to 60 methods a second, 2 to 4 % of a core), and tiered
    /// compilation works in waves (tier 0, instrumented code, tier 1, each after its call counts and a delay) with lulls
    /// between them, so one quiet window is not enough either. Measured on the benchmark app (one worker, 2 cores):
    /// compiling takes 60 to 80 % of each half second for about 9 s under full load (R2R framework code is recompiled
    /// twice when hot: instrumented, then tier 1), then drops to 4 %.
    /// </summary>
    private static readonly TimeSpan s_window = TimeSpan.FromMilliseconds(500);

    private const int SettledWindows = 2;

    private const double SettledJitShare = 0.05;

    /// <summary>Requests before the JIT may count as settled: past the 30 calls that promote a method, in every loop.</summary>
    private const long MinimumRequests = 400;

    private static readonly Protocol[] s_protocols =
    [
        new(Uri.UriSchemeHttp, HttpVersion.Version11, "HTTP/1.1"),
        new(Uri.UriSchemeHttps, HttpVersion.Version11, "HTTP/1.1 over TLS"),
        new(Uri.UriSchemeHttp, HttpVersion.Version20, "HTTP/2"),
        new(Uri.UriSchemeHttps, HttpVersion.Version20, "HTTP/2 over TLS"),
    ];

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var path = options.Value.WarmUpPath;
        if (path is null)
        {
            return;
        }

        if (channel.Listeners is not [var listener, ..])
        {
            LifecycleLog.WarmUpSkipped(_logger, identity.WorkerId, "it serves no endpoint");
            return;
        }

        var started = Stopwatch.StartNew();
        var methodsBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, channel.WarmUpNotWanted);
        deadline.CancelAfter(options.Value.MaxWarmUpTime);
        using var loopback = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        loopback.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        loopback.Listen(Loops * 2);
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = (_, token) => ConnectAsync(loopback, listener, token),
#pragma warning disable CA5359 // the server is this process's own endpoint, over loopback: its certificate is ours
            SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
#pragma warning restore CA5359
            UseProxy = false,
            AllowAutoRedirect = false,
        };
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };

        InProgress = true;
        try
        {
            Probing = true;
            var protocol = await FindProtocolAsync(client, path, deadline.Token).ConfigureAwait(false);
            Probing = false;
            if (protocol is not { } found)
            {
                LifecycleLog.WarmUpSkipped(_logger, identity.WorkerId, $"its endpoint {listener.EndPoint} answered {path} in none of " +
                    string.Join(", ", s_protocols.Select(p => p.Name)));
                return;
            }

            long requests = 0;
            var jitBefore = System.Runtime.JitInfo.GetCompilationTime();
            using var settled = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            var loops = Enumerable.Range(0, Loops).Select(async _ =>
            {
                for (var i = 1; !settled.IsCancellationRequested; i++)
                {
                    using var request = Request(found, path, close: i % CloseEvery == 0);
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, settled.Token)
                        .ConfigureAwait(false);
                    Interlocked.Increment(ref requests);
                    await Task.Delay(s_pace, settled.Token).ConfigureAwait(false);
                }
            }).ToList();

            // Settled: compiling took a small share of the time for several windows in a row, after enough requests; the
            // deadline ends it anyway.
            var quietWindows = 0;
            while (!settled.IsCancellationRequested && !loops.Any(l => l.IsFaulted))
            {
                await Task.Delay(s_window, CancellationToken.None).ConfigureAwait(false);
                var jit = System.Runtime.JitInfo.GetCompilationTime();
                quietWindows = (jit - jitBefore) <= s_window * SettledJitShare ? quietWindows + 1 : 0;
                if (quietWindows >= SettledWindows && Interlocked.Read(ref requests) >= MinimumRequests)
                {
                    await settled.CancelAsync().ConfigureAwait(false);
                }

                jitBefore = jit;
            }

            await settled.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(loops).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // the loops end by cancellation
            }

            InProgress = false;
            if (channel.WarmUpNotWanted.IsCancellationRequested)
            {
                LifecycleLog.WarmUpEnded(_logger, identity.WorkerId, started.ElapsedMilliseconds, requests);
                return;
            }

            LifecycleLog.WarmedUp(_logger, identity.WorkerId, requests, path, found.Name, started.ElapsedMilliseconds,
                System.Runtime.JitInfo.GetCompiledMethodCount() - methodsBefore);
        }
        catch (OperationCanceledException) when (channel.WarmUpNotWanted.IsCancellationRequested
            && !cancellationToken.IsCancellationRequested)
        {
            (InProgress, Probing) = (false, false); // or the filter would swallow the line
            LifecycleLog.WarmUpEnded(_logger, identity.WorkerId, started.ElapsedMilliseconds, requests: 0); // before it found the protocol
        }
        catch (Exception e) when (e is HttpRequestException or IOException or SocketException or OperationCanceledException)
        {
            if (!cancellationToken.IsCancellationRequested)
            {
                LifecycleLog.WarmUpSkipped(_logger, identity.WorkerId, e.Message, e);
            }
        }
        finally
        {
            (InProgress, Probing) = (false, false); // whatever ended the warm-up
        }
    }

    private static async Task<Protocol?> FindProtocolAsync(HttpClient client, string path,
        CancellationToken cancellationToken)
    {
        foreach (var protocol in s_protocols)
        {
            try
            {
                using var request = Request(protocol, path, close: false);
                using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
                return protocol;
            }
            catch (HttpRequestException)
            {
                // not this protocol: the next one
            }
        }

        return null;
    }

    private static HttpRequestMessage Request(Protocol protocol, string path, bool close)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{protocol.Scheme}://localhost{path}"))
        {
            Version = protocol.Version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.Add(HeaderName, "1");
        request.Headers.ConnectionClose = close && protocol.Version == HttpVersion.Version11;
        return request;
    }

    /// <summary>A way to reach the endpoint: the URI scheme, the HTTP version asked for exactly, and its name in the log.</summary>
    private sealed record Protocol(string Scheme, Version Version, string Name);

    /// <summary>A loopback connection whose accepted end the endpoint's listener serves as a handed-off one.</summary>
    private static async ValueTask<Stream> ConnectAsync(Socket loopback, WorkerConnectionListener listener, CancellationToken token)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(loopback.LocalEndPoint!, token).ConfigureAwait(false);
            // The listening socket is blocking (only synchronous calls were made on it): the accept waits for the
            // connection the kernel is completing, if it is not in the queue yet.
            var fd = PeerAddress.Accept(loopback.SafeHandle, out var peer);
            if (fd < 0)
            {
                throw new IOException("The warm-up's loopback connection was not in its listener's queue.");
            }

            if (!listener.TryEnqueueWarmUp(fd, peer))
            {
                Interop.Libc.CloseDescriptor(fd);
                throw new IOException("The endpoint's listener is closed: the worker is stopping.");
            }

            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
