// The one place that talks to libc: accept4, shutdown, close, getrandom, geteuid, SO_PEERCRED, prctl, realpath, (in
// Libc.Messages.cs) sendmsg/recvmsg with SCM_RIGHTS ancillary data and (in Libc.Epoll.cs) epoll for the accept threads.
// Layouts are glibc x64/arm64 (LP64), checked at startup (AbiMismatch); nothing outside this folder touches a pointer.
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    public const int EINTR = 4;
    public const int EBADF = 9;
    public const int ENOBUFS = 105;
    public const int EAGAIN = 11;
    public const int EPIPE = 32;
    public const int EINVAL = 22;
    public const int EMFILE = 24;
    public const int ENFILE = 23;
    public const int ECONNRESET = 104;

    /// <summary>
    /// Why the hand-written layouts and constants in this file do not fit this process, or null when they do: they
    /// assume 64-bit Linux (x64 or arm64, LP64) with glibc. Checked once, at startup; a mismatch turns clustering off.
    /// </summary>
    public static string? AbiMismatch { get; } = CheckAbi();

    /// <summary>The most fds one sendmsg may carry (the kernel's SCM_MAX_FD; 254 fails with EINVAL).</summary>
    public const int MaxFdsPerSend = 253;

    /// <summary>The size of a struct sockaddr_storage: room for any address accept4 returns.</summary>
    public const int SockAddrStorageLength = 128;

    private const int SOL_SOCKET = 1;
    private const int SCM_RIGHTS = 1;
    private const int SO_PEERCRED = 17;
    private const int SO_REUSEPORT = 15;
    private const int MSG_TRUNC = 0x20;
    private const int MSG_CTRUNC = 0x08;
    private const int MSG_DONTWAIT = 0x40;
    private const int MSG_NOSIGNAL = 0x4000;
    private const int MSG_CMSG_CLOEXEC = 0x40000000;

    /// <summary>
    /// Accepts one connection (accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC: the worker's Socket is told the fd is
    /// non-blocking already, and skips the two fcntl calls the runtime would make on its first async operation).
    /// Returns the new fd, with the client's sockaddr in <paramref name="address"/> (at least
    /// <see cref="SockAddrStorageLength"/> bytes) and its length, or -errno: -EAGAIN when a
    /// non-blocking listener's backlog is empty, -EINVAL once the listening socket is shut down, -ECONNABORTED for a
    /// connection reset in the backlog.
    /// </summary>
    public static int Accept(SafeSocketHandle listener, Span<byte> address, out int addressLength)
    {
        var addRef = false;
        addressLength = 0;
        try
        {
            listener.DangerousAddRef(ref addRef);
            fixed (byte* sockaddr = address)
            {
            while (true)
            {
                var length = (uint)Math.Min(address.Length, SockAddrStorageLength);
                var fd = accept4((int)listener.DangerousGetHandle(), sockaddr, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0)
                {
                    addressLength = (int)Math.Min(length, (uint)address.Length);
                    return fd;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
            }
        }
        finally
        {
            if (addRef)
            {
                listener.DangerousRelease();
            }
        }
    }

    /// <summary>Marks <paramref name="fd"/> close-on-exec (an inherited fd: a systemd-activated socket); false on failure.</summary>
    public static bool SetCloseOnExec(int fd) => fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;

    /// <summary>
    /// A close-on-exec duplicate of <paramref name="handle"/>'s fd (the same open socket), owned by the caller; -errno on
    /// failure, -EBADF when the handle is already closed.
    /// </summary>
    public static int Duplicate(SafeHandle handle)
    {
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var fd = fcntl((int)handle.DangerousGetHandle(), F_DUPFD_CLOEXEC, 0);
            return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
        }
        catch (ObjectDisposedException)
        {
            return -EBADF;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>Wakes a thread blocked in <see cref="Accept"/> or poll() on this socket (shutdown(SHUT_RDWR)).</summary>
    public static void Shutdown(SafeSocketHandle socket) => shutdown((int)socket.DangerousGetHandle(), SHUT_RDWR);

    /// <summary>Closes a raw fd that was never wrapped in a <see cref="Socket"/>.</summary>
    public static void CloseDescriptor(int fd) => close(fd);

    /// <summary>
    /// Fills <paramref name="destination"/> from the kernel's CSPRNG (getrandom(2)). Used for the workers' secrets
    /// instead of RandomNumberGenerator, which would load OpenSSL's libcrypto into the primary (3.4 MB resident) for
    /// 32 bytes per worker.
    /// </summary>
    public static void FillRandom(Span<byte> destination)
    {
        fixed (byte* start = destination)
        {
            var filled = 0;
            while (filled < destination.Length)
            {
                var read = getrandom(start + filled, (nuint)(destination.Length - filled), 0);
                if (read < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        throw new InvalidOperationException($"getrandom failed (errno {errno}).");
                    }

                    continue;
                }

                filled += (int)read;
            }
        }
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserId => geteuid();

    /// <summary>
    /// SO_REUSEPORT, before bind: sockets of this user bound to the same address with it form a group the kernel spreads new
    /// connections over (Scheduling=ReusePort).
    /// </summary>
    public static void SetReusePort(Socket socket) => socket.SetRawSocketOption(SOL_SOCKET, SO_REUSEPORT, BitConverter.GetBytes(1));

    /// <summary>Whether SO_REUSEPORT is set on <paramref name="socket"/> (a listening socket taken over from another primary).</summary>
    public static bool HasReusePort(Socket socket)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        return socket.GetRawSocketOption(SOL_SOCKET, SO_REUSEPORT, value) == sizeof(int) && BitConverter.ToInt32(value) != 0;
    }

    /// <summary>The process, user and group of the peer of a connected Unix domain socket (SO_PEERCRED).</summary>
    public static PeerCredentials GetPeerCredentials(Socket socket)
    {
        Span<byte> ucred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var length = socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, ucred);
        if (length != 12)
        {
            throw new InvalidOperationException("SO_PEERCRED returned an unexpected length.");
        }

        var values = MemoryMarshal.Cast<byte, int>(ucred);
        return new PeerCredentials(values[0], (uint)values[1], (uint)values[2]);
    }

    /// <summary>
    /// Asks the kernel to send this process <paramref name="signal"/> when its parent dies (PR_SET_PDEATHSIG).
    /// Returns false where that is not available.
    /// </summary>
    public static bool SetParentDeathSignal(int signal) => OperatingSystem.IsLinux() && prctl(PR_SET_PDEATHSIG, (nuint)signal, 0, 0,
        0) == 0;

    /// <summary>The canonical absolute path of <paramref name="path"/> (realpath(3): symlinks resolved); null if it is missing.</summary>
    public static string? RealPath(string path)
    {
        var resolved = stackalloc byte[4096]; // PATH_MAX
        return realpath(path, resolved) is null ? null : Marshal.PtrToStringUTF8((nint)resolved);
    }

    /// <summary>The process id of this process's parent.</summary>
    public static int ParentProcessId => getppid();

    /// <summary>Sends <paramref name="signal"/> to process <paramref name="processId"/>; false if it is gone.</summary>
    public static bool SendSignal(int processId, int signal) => kill(processId, signal) == 0;

    private const int PR_SET_PDEATHSIG = 1;
    private const int SOCK_CLOEXEC = 0x80000;
    private const int SOCK_NONBLOCK = 0x800;
    private const int SHUT_RDWR = 2;
    private const int F_DUPFD_CLOEXEC = 1030;
    private const int F_SETFD = 2;
    private const int FD_CLOEXEC = 1;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint getrandom(byte* buffer, nuint length, uint flags);

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [LibraryImport("libc")]
    private static partial int getppid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial byte* realpath(string path, byte* resolved);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int accept4(int sockfd, void* addr, void* addrlen, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int shutdown(int sockfd, int how);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    private static string? CheckAbi()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux";
        }

        if (!Environment.Is64BitProcess || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            return $"a {RuntimeInformation.ProcessArchitecture} process, not 64-bit x64 or arm64";
        }

        if (sizeof(MsgHdr) != 56 || sizeof(CMsgHdr) != 16 || sizeof(IoVec) != 16)
        {
            return "struct msghdr/cmsghdr/iovec sizes differ from LP64 glibc";
        }

        if (!NativeLibrary.TryLoad("libc.so.6", out var libc) || !NativeLibrary.TryGetExport(libc, "gnu_get_libc_version", out _))
        {
            return "the C library is not glibc (musl, as on Alpine, is not supported yet)";
        }

        return null;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLen;
        public IoVec* Iov;
        public nuint IovLen;
        public void* Control;
        public nuint ControlLen;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CMsgHdr
    {
        public nuint Len;
        public int Level;
        public int Type;
    }
}

/// <summary>What SO_PEERCRED says about the other end of a Unix domain socket.</summary>
internal readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId);
