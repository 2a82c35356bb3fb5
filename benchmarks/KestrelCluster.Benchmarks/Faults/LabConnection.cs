// One client connection of the fault lab's load: HTTP/1.1 GETs, one at a time, over a raw socket (no client library
// between the measurement and the server: nothing pooled, retried or buffered behind the lab's back).
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Benchmarks.Faults;

internal sealed class LabConnection : IDisposable
{
    private readonly int _port;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private Socket? _socket;
    private int _requestsOnSocket;

    public LabConnection(int port) => _port = port;

    /// <summary>
    /// Sends GET <paramref name="path"/> and reads the answer; true for a 2xx. Like a browser or HttpClient, a request
    /// that found its kept-alive connection closed before any byte of an answer is sent once more on a new one (an idempotent
    /// GET, RFC 9112 §9.3.1); any other error closes the connection, and the next request opens a new one.
    /// </summary>
    public async Task<bool> GetAsync(string path, bool closeAfter, CancellationToken cancellationToken)
    {
        try
        {
            try
            {
                return await SendAsync(path, closeAfter, cancellationToken);
            }
            catch (StaleConnectionException)
            {
                return await SendAsync(path, closeAfter, cancellationToken);
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or InvalidDataException or StaleConnectionException)
        {
            Close();
            return false;
        }
    }

    public void Dispose() => Close();

    private void Close()
    {
        _socket?.Dispose();
        _socket = null;
        _requestsOnSocket = 0;
    }

    private async Task<bool> SendAsync(string path, bool closeAfter, CancellationToken cancellationToken)
    {
        if (_socket is null)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _port), cancellationToken);
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            _socket = socket;
        }

        var reused = _requestsOnSocket++ > 0;
        var request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{_port}\r\n{(closeAfter ? "Connection: close\r\n" : "")}\r\n");
        int length;
        try
        {
            await _socket.SendAsync(request, SocketFlags.None, cancellationToken);
            length = await _socket.ReceiveAsync(_buffer, SocketFlags.None, cancellationToken);
        }
        catch (SocketException) when (reused)
        {
            Close();
            throw new StaleConnectionException();
        }

        if (length == 0)
        {
            Close();
            return reused ? throw new StaleConnectionException() : throw new IOException("The server closed the connection without an answer.");
        }

        var (status, keepAlive) = await ReadResponseAsync(length, cancellationToken);
        if (closeAfter || !keepAlive)
        {
            Close();
        }

        return status is >= 200 and < 300;
    }

    /// <summary>Reads one whole response (Content-Length or chunked) whose first <paramref name="length"/> bytes are in the buffer.</summary>
    private async Task<(int Status, bool KeepAlive)> ReadResponseAsync(int length, CancellationToken cancellationToken)
    {
        int headerEnd;
        while ((headerEnd = _buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
        {
            length += await ReceiveMoreAsync(length, cancellationToken);
        }

        var head = Encoding.ASCII.GetString(_buffer, 0, headerEnd);
        var lines = head.Split("\r\n");
        var status = lines[0].Length >= 12 && int.TryParse(lines[0].AsSpan(9, 3), out var code) ? code : throw new InvalidDataException(lines[0]);
        var contentLength = 0;
        var chunked = false;
        var keepAlive = true;
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var (name, value) = colon < 0 ? (line, "") : (line[..colon].Trim(), line[(colon + 1)..].Trim());
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                contentLength = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
            }
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                keepAlive = !value.Contains("close", StringComparison.OrdinalIgnoreCase);
            }
        }

        var position = headerEnd + 4;
        if (!chunked)
        {
            while (length < position + contentLength)
            {
                length += await ReceiveMoreAsync(length, cancellationToken);
            }

            return (status, keepAlive);
        }

        while (true)
        {
            int lineEnd;
            while ((lineEnd = _buffer.AsSpan(position, length - position).IndexOf("\r\n"u8)) < 0)
            {
                length += await ReceiveMoreAsync(length, cancellationToken);
            }

            var size = Convert.ToInt32(Encoding.ASCII.GetString(_buffer, position, lineEnd).Split(';')[0].Trim(), 16);
            position += lineEnd + 2;
            var needed = position + size + 2; // the chunk and its CRLF (after the last chunk: the empty trailer's CRLF)
            while (length < needed)
            {
                length += await ReceiveMoreAsync(length, cancellationToken);
            }

            position = needed;
            if (size == 0)
            {
                return (status, keepAlive);
            }
        }
    }

    private async Task<int> ReceiveMoreAsync(int length, CancellationToken cancellationToken)
    {
        if (length == _buffer.Length)
        {
            throw new InvalidDataException("The response does not fit the lab's buffer.");
        }

        var received = await _socket!.ReceiveAsync(_buffer.AsMemory(length), SocketFlags.None, cancellationToken);
        return received > 0 ? received : throw new IOException("The server closed the connection in the middle of an answer.");
    }

    private sealed class StaleConnectionException : Exception;
}
