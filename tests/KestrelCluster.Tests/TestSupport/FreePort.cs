// A TCP port free on both 127.0.0.1 and ::1, for the few endpoints that cannot use port 0 (localhost, HTTP/3).
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Tests.TestSupport;

internal static class FreePort
{
    public static int Tcp()
    {
        using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
        probe.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
