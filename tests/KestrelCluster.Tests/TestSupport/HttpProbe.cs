// Requests against a running cluster, and reading who served them (the sample answers with its pid).
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace KestrelCluster.Tests.TestSupport;

internal static partial class HttpProbe
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>A client that trusts the test certificate and speaks the given HTTP version only.</summary>
    public static HttpClient CreateClient(Version? version = null, bool keepAlive = true)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
            PooledConnectionLifetime = keepAlive ? Timeout : TimeSpan.Zero,
        };
        var client = new HttpClient(handler) { Timeout = Timeout };
        if (version is not null)
        {
            client.DefaultRequestVersion = version;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        if (!keepAlive)
        {
            client.DefaultRequestHeaders.ConnectionClose = true;
        }

        return client;
    }

    /// <summary>The pid in the sample's answer ("… (pid 1234) …").</summary>
    public static int ServedBy(string body)
    {
        var match = PidPattern().Match(body);
        Assert.True(match.Success, $"No pid in the answer: {body}");
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// One HTTP/1.1 request on a new connection (Connection: close) to a TCP or Unix socket endpoint, optionally
    /// from a given local address; returns the whole response.
    /// </summary>
    public static async Task<string> NewConnectionRequestAsync(EndPoint endpoint, string path = "/", IPAddress? from = null, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, endpoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }

        await socket.ConnectAsync(endpoint, timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"), timeout.Token);
        return await ReadToEndAsync(socket, timeout.Token);
    }

    /// <summary>Reads until the server closes the connection.</summary>
    public static async Task<string> ReadToEndAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        var response = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
        {
            response.Write(buffer, 0, read);
        }

        return Encoding.ASCII.GetString(response.ToArray());
    }

    public static IPEndPoint EndPointOf(string address)
    {
        var uri = new Uri(address);
        return new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port);
    }

    [GeneratedRegex(@"pid (\d+)")]
    private static partial Regex PidPattern();
}
