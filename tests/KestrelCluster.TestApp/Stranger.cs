// A process that reaches a primary's control socket without being a worker it spawned (see Program.cs).
using System.Net.Sockets;

namespace KestrelCluster.TestApp;

internal static class Stranger
{
    /// <summary>Connects, sends <paramref name="frame"/>, and reports whether the primary hung up (exit code 0).</summary>
    public static int Run(string controlSocket, byte[] frame)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(controlSocket));
        socket.ReceiveTimeout = 10_000;
        try
        {
            socket.Send(frame);
            var received = socket.Receive(new byte[64]);
            Console.WriteLine(received == 0 ? "hung up" : $"answered with {received} bytes");
            return received == 0 ? 0 : 1;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
        {
            Console.WriteLine("hung up");
            return 0;
        }
        catch (SocketException e)
        {
            Console.WriteLine($"failed: {e.SocketErrorCode}");
            return 1;
        }
    }
}
