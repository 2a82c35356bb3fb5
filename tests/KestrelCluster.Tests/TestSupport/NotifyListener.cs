// A NOTIFY_SOCKET as systemd provides it (sd_notify's datagram socket): every message a service sends is collected.
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;

namespace KestrelCluster.Tests.TestSupport;

/// <summary>A NOTIFY_SOCKET as systemd provides it: a datagram socket whose messages are collected.</summary>
internal sealed class NotifyListener : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly Task _receiving;

    public NotifyListener(string path)
    {
        Path = path;
        _socket.Bind(new UnixDomainSocketEndPoint(path));
        _receiving = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            while (true)
            {
                try
                {
                    var length = await _socket.ReceiveAsync(buffer, SocketFlags.None);
                    Messages.Enqueue(Encoding.UTF8.GetString(buffer, 0, length));
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }
            }
        });
    }

    public string Path { get; }

    public ConcurrentQueue<string> Messages { get; } = new();

    public void Dispose()
    {
        _socket.Dispose();
        _receiving.Wait(TimeSpan.FromSeconds(5));
    }
}
