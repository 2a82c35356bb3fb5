// The client's address as accept4() wrote it in the primary (a raw sockaddr_in or sockaddr_in6), carried in the
// handoff frame so the worker knows it without asking the kernel: the runtime's own accept path gets it the same
// way, from accept itself. Other families (Unix domain peers) travel as "unknown" and the worker asks the socket.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal struct PeerAddress
{
    /// <summary>sizeof(struct sockaddr_in6), the largest address carried.</summary>
    public const int MaxLength = 28;

    private const ushort AfInet = 2;
    private const ushort AfInet6 = 10;
    private const int SockAddrInLength = 16;

    private Bytes _bytes;
    private byte _length;

    /// <summary>Length of the sockaddr; 0 when the address is unknown.</summary>
    public readonly int Length => _length;

    /// <summary>Copies the sockaddr bytes (<see cref="Length"/> of them) to <paramref name="destination"/>.</summary>
    public readonly void CopyTo(Span<byte> destination) => ((ReadOnlySpan<byte>)_bytes)[.._length].CopyTo(destination);

    /// <summary>Accepts one connection (see <see cref="Libc.Accept"/>); <paramref name="peer"/> is the client's address.</summary>
    public static int Accept(SafeSocketHandle listener, out PeerAddress peer)
    {
        Span<byte> sockaddr = stackalloc byte[Libc.SockAddrStorageLength];
        var fd = Libc.Accept(listener, sockaddr, out var length);
        peer = fd >= 0 ? From(sockaddr[..length]) : default;
        return fd;
    }

    /// <summary>Keeps <paramref name="sockaddr"/> if it is an IPv4 or IPv6 address; otherwise the address stays unknown.</summary>
    public static PeerAddress From(ReadOnlySpan<byte> sockaddr)
    {
        var address = default(PeerAddress);
        if (IsInternet(sockaddr))
        {
            sockaddr.CopyTo(address._bytes);
            address._length = (byte)sockaddr.Length;
        }

        return address;
    }

    /// <summary>The address as an <see cref="IPEndPoint"/>, or null when it is unknown.</summary>
    public readonly IPEndPoint? ToEndPoint()
    {
        // From() kept only well-formed sockaddr_in(6): family (host order), port (network order), then the address.
        ReadOnlySpan<byte> sockaddr = _bytes;
        return Family switch
        {
            AddressFamily.InterNetwork => new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)),
                BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..])),
            AddressFamily.InterNetworkV6 => new IPEndPoint(
                new IPAddress(sockaddr.Slice(8, 16), MemoryMarshal.Read<uint>(sockaddr[24..])), // scope id: host order
                BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..])),
            _ => null,
        };
    }

    /// <summary>The address family, or Unknown.</summary>
    public readonly AddressFamily Family => _length switch
    {
        SockAddrInLength => AddressFamily.InterNetwork,
        MaxLength => AddressFamily.InterNetworkV6,
        _ => AddressFamily.Unknown,
    };

    private static bool IsInternet(ReadOnlySpan<byte> sockaddr) =>
        sockaddr.Length >= sizeof(ushort) && MemoryMarshal.Read<ushort>(sockaddr) switch // sa_family: host order
        {
            AfInet => sockaddr.Length == SockAddrInLength,
            AfInet6 => sockaddr.Length == MaxLength,
            _ => false,
        };

    [InlineArray(MaxLength)]
    private struct Bytes
    {
        private byte _element0;
    }
}
