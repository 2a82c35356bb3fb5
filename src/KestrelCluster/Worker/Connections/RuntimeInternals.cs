// Every place KestrelCluster reaches past a public API, in one file, and the fence around them. Two shortcuts,
// both measured (benchmarks/README.md) and both with a public fallback that does the same work more slowly:
//   - the runtime's accept path for a handed-off socket (Socket's private constructor and fields, and
//     SocketAsyncContext._isHandleNonBlocking): no fstat/getsockopt/getsockname/getpeername/fcntl per connection;
//   - Kestrel's internal SocketConnectionFactoryOptions(SocketTransportOptions) constructor: the worker's
//     connections get Kestrel's pinned-block memory pool instead of the shared array pool.
// They are used only on the runtime they were validated on (ValidatedRuntimeMajor), only when a probe finds every
// member with the meaning expected (a field that still exists with another meaning makes the probe fail), and never
// when the app turns them off: the AppContext switch "KestrelCluster.DisableRuntimeInternals" (runtimeconfig, or
// <RuntimeHostConfigurationOption> in the csproj) or the environment variable KESTRELCLUSTER_DISABLE_RUNTIME_INTERNALS=1.
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace KestrelCluster.Worker.Connections;

internal static class RuntimeInternals
{
    public const string DisableSwitch = "KestrelCluster.DisableRuntimeInternals";
    public const string DisableVariable = "KESTRELCLUSTER_DISABLE_RUNTIME_INTERNALS";

    /// <summary>The .NET major version whose private members these shortcuts were written and tested against.</summary>
    public const int ValidatedRuntimeMajor = 10;

    // Before the properties below: static fields initialize in order, and CanBuildAcceptedSocket's probe uses this one.
    /// <summary>A dual-mode wildcard listener's address as its IPv4 connections see it (built once: this runs per connection).</summary>
    private static readonly IPAddress s_ipv4AnyMappedToIPv6 = IPAddress.Any.MapToIPv6();

    private const string SocketAsyncContextType = "System.Net.Sockets.SocketAsyncContext, System.Net.Sockets";

    /// <summary>Whether the app turned the shortcuts off (switch or environment variable).</summary>
    public static bool DisabledByApp { get; } =
        (AppContext.TryGetSwitch(DisableSwitch,
            out var disabled) && disabled) || Environment.GetEnvironmentVariable(DisableVariable) is "1" or "true";

    /// <summary>Whether this runtime is the one the shortcuts were validated on.</summary>
    public static bool IsValidatedRuntime { get; } = Environment.Version.Major == ValidatedRuntimeMajor;

    /// <summary>Whether handed-off sockets may be built as the runtime's accept path builds them (probed once).</summary>
    public static bool CanBuildAcceptedSocket { get; } = !DisabledByApp && IsValidatedRuntime && ProbeAcceptedSocket();

    /// <summary>
    /// A connected Socket for <paramref name="handle"/>, an fd accepted with SOCK_NONBLOCK, with no syscall: the
    /// listener's family, type and protocol, <paramref name="remote"/> from accept4, and the listener's own address
    /// when it is bound to one. Only when <see cref="CanBuildAcceptedSocket"/>.
    /// </summary>
    public static Socket BuildAcceptedSocket(SafeSocketHandle handle, IPEndPoint local, IPEndPoint remote)
    {
        var socket = NewSocket(handle, loadPropertiesFromHandle: false);
        InitializeAccepted(socket, local, remote);
        IsHandleNonBlocking(AsyncContextOf(handle)) = true;
        return socket;
    }

    /// <summary>Kestrel's own options for <paramref name="transport"/> (its memory pool included); null when fenced off or
    /// missing.</summary>
    public static SocketConnectionFactoryOptions? TryCreateFactoryOptions(SocketTransportOptions transport)
    {
        if (DisabledByApp || !IsValidatedRuntime)
        {
            return null;
        }

        try
        {
            return FromTransportOptions(transport);
        }
        catch (MissingMemberException)
        {
            return null;
        }
    }

    private static void InitializeAccepted(Socket socket, IPEndPoint local, IPEndPoint remote)
    {
        AddressFamilyOf(socket) = local.AddressFamily;
        SocketTypeOf(socket) = SocketType.Stream;
        ProtocolTypeOf(socket) = ProtocolType.Tcp;
        RemoteEndPointOf(socket) = remote;
        RightEndPointOf(socket) = local;

        // As for an accepted socket: a listener bound to one address gives every connection that local address; a
        // wildcard listener's connections ask the kernel (getsockname) if anyone reads LocalEndPoint.
        LocalEndPointOf(socket) = IsWildcard(local.Address) ? null : local;
        SetToConnected(socket);
    }

    private static bool IsWildcard(IPAddress address) =>
        address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(s_ipv4AnyMappedToIPv6);

    /// <summary>Builds one socket on a handle that owns nothing and checks that the public API reads back what was set.</summary>
    private static bool ProbeAcceptedSocket()
    {
        try
        {
            var local = new IPEndPoint(IPAddress.Loopback, 1);
            var remote = new IPEndPoint(IPAddress.Loopback, 2);
            using var socket = NewSocket(new SafeSocketHandle(-1, ownsHandle: false), loadPropertiesFromHandle: false);
            InitializeAccepted(socket, local, remote);
            var context = AsyncContextOf(socket.SafeHandle);
            if (IsHandleNonBlocking(context))
            {
                return false; // a fresh context says "blocking"; anything else means the field is not what we think
            }

            return socket.Connected && socket.AddressFamily == AddressFamily.InterNetwork && socket.SocketType == SocketType.Stream
                && socket.ProtocolType == ProtocolType.Tcp && Equals(socket.LocalEndPoint, local) && Equals(socket.RemoteEndPoint, remote)
                && socket.Blocking;
        }
        catch (Exception e) when (e is MissingMemberException or TypeLoadException or InvalidCastException)
        {
            return false;
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern SocketConnectionFactoryOptions FromTransportOptions(SocketTransportOptions transportOptions);

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Socket NewSocket(SafeSocketHandle handle, bool loadPropertiesFromHandle);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_addressFamily")]
    private static extern ref AddressFamily AddressFamilyOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketType")]
    private static extern ref SocketType SocketTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_protocolType")]
    private static extern ref ProtocolType ProtocolTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_remoteEndPoint")]
    private static extern ref EndPoint? RemoteEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_rightEndPoint")]
    private static extern ref EndPoint? RightEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_localEndPoint")]
    private static extern ref EndPoint? LocalEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_AsyncContext")]
    [return: UnsafeAccessorType(SocketAsyncContextType)]
    private static extern object AsyncContextOf(SafeSocketHandle handle);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_isHandleNonBlocking")]
    private static extern ref bool IsHandleNonBlocking([UnsafeAccessorType(SocketAsyncContextType)] object context);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "SetToConnected")]
    private static extern void SetToConnected(Socket socket);
}
