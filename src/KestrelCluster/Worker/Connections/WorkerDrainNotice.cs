// Before a worker the primary retires drains, its HTTP/1.1 clients are told to leave: for a moment every response says
// `Connection: close`, so a busy keep-alive client reconnects between two requests — to a worker that stays, or to the
// primary that took over — instead of finding its connection closed under a request it has just sent. Kestrel's
// graceful stop closes idle keep-alive connections at once, and a client that reused one at that instant gets no
// response (Envoy's drain answers `connection: close` the same way, for the same reason). HTTP/2 needs nothing: at the
// drain Kestrel sends GOAWAY, and a client retries the streams it names as unprocessed. WorkerRequestHook calls it for
// each request.
using Microsoft.AspNetCore.Http;

namespace KestrelCluster.Worker.Connections;

internal sealed class WorkerDrainNotice
{
    /// <summary>How long responses say `Connection: close` before the drain begins.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    private volatile bool _closing;

    /// <summary>Whether responses say `Connection: close` now.</summary>
    public bool IsClosing => _closing;

    /// <summary>Tells HTTP/1.1 clients to reconnect from now on; runs <paramref name="drain"/> one <see cref="Period"/> later.</summary>
    public void Begin(Action drain)
    {
        _closing = true;
        _ = Task.Delay(Period).ContinueWith(_ => drain(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    /// <summary>While the notice runs, makes an HTTP/1.x response say `Connection: close`.</summary>
    public void Apply(HttpContext context)
    {
        if (_closing && !HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
        {
            context.Response.Headers.Connection = "close"; // Kestrel closes the connection once this response is out
        }
    }
}
