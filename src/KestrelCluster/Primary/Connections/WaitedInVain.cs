// The primary's last word to a client whose connection waited longer than ClusterOptions.MaxConnectionWait for a worker.
// The primary does not run the app's pipeline, and the endpoint may be TLS or HTTP/2, so it answers only what it can
// answer safely: a plain HTTP/1.x request gets "503 Service Unavailable" with Retry-After (what a load balancer or a
// client library retries on), anything else (a TLS ClientHello, HTTP/2's preface, nothing sent yet) just the end of the
// connection. What the client sent is read first, so that the close is a FIN after the answer, not a reset before it.
using System.Text;
using KestrelCluster.Interop;

namespace KestrelCluster.Primary.Connections;

internal static class WaitedInVain
{
    private const int MaxDrain = 64 * 1024;

    private static readonly byte[] s_serviceUnavailable = Encoding.ASCII.GetBytes(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain\r\n" +
        "Content-Length: 61\r\n\r\nNo server process could take this connection; try again soon.\n");

    /// <summary>Answers (if it can) and closes a connection that waited in vain.</summary>
    public static void Close(AcceptedConnection connection)
    {
        if (connection.TryAddRef())
        {
            try
            {
                Answer(connection.Fd);
            }
            finally
            {
                connection.Release();
            }
        }

        connection.Close();
    }

    /// <summary>Whether the first bytes a client sent are an HTTP/1.x request line (not HTTP/2's "PRI * HTTP/2.0" preface).</summary>
    internal static bool IsHttp1Request(ReadOnlySpan<byte> start)
    {
        var space = start.IndexOf((byte)' ');
        if (space is < 3 or > 7 || start.StartsWith("PRI * HTTP/2"u8))
        {
            return false;
        }

        foreach (var b in start[..space])
        {
            if (b is < (byte)'A' or > (byte)'Z')
            {
                return false;
            }
        }

        return true;
    }

    private static void Answer(int fd)
    {
        Span<byte> buffer = stackalloc byte[4096];
        Span<byte> start = stackalloc byte[16];
        var startLength = 0;
        for (var drained = 0; drained < MaxDrain;)
        {
            var read = Libc.ReceiveNow(fd, buffer);
            if (read <= 0)
            {
                break;
            }

            if (startLength < start.Length)
            {
                var take = Math.Min(read, start.Length - startLength);
                buffer[..take].CopyTo(start[startLength..]);
                startLength += take;
            }

            drained += read;
        }

        if (IsHttp1Request(start[..startLength]))
        {
            Libc.SendNow(fd, s_serviceUnavailable);
        }
    }
}
