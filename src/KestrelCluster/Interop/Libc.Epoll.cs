// epoll for the primary's accept threads. Several threads wait on one listening socket, each in its own epoll instance
// registered with EPOLLEXCLUSIVE (Linux 4.5+, what nginx uses without an accept mutex): a new connection wakes one
// waiting thread, not all of them, as poll() on a shared socket would (the thundering herd). Each instance also watches
// the listener's stop eventfd (not exclusive): written once, it wakes every thread for good. The threads are stopped
// that way, never by a shutdown() of the socket: a socket systemd passed (or, later, a new primary took over) is shared
// with another process, and a shutdown would stop it listening there too and reset the connections in its backlog.
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    private const int EPOLL_CLOEXEC = 0x80000;
    private const int EPOLL_CTL_ADD = 1;
    private const uint EPOLLIN = 0x1;
    private const uint EPOLLEXCLUSIVE = 1u << 28;

    // struct epoll_event is 12 bytes on x64 (packed) and 16 on arm64. Only its `events` field is used, at offset 0 in
    // both layouts, so a zeroed 16-byte buffer serves either.
    private const int EpollEventBufferLength = 16;
    private const int EFD_CLOEXEC = 0x80000;

    /// <summary>An eventfd that wakes the accept threads for good once <see cref="Signal"/> writes to it. Owned by the caller.</summary>
    public static SafeFileHandle CreateStopEvent()
    {
        var fd = eventfd(0, EFD_CLOEXEC);
        return fd >= 0
            ? new SafeFileHandle(fd, ownsHandle: true)
            : throw new InvalidOperationException($"eventfd failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    /// <summary>Makes <paramref name="stopEvent"/> readable, for good (nothing reads it).</summary>
    public static void Signal(SafeFileHandle stopEvent)
    {
        var added = false;
        try
        {
            stopEvent.DangerousAddRef(ref added);
            ulong one = 1;
            _ = write((int)stopEvent.DangerousGetHandle(), &one, sizeof(ulong));
        }
        finally
        {
            if (added)
            {
                stopEvent.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// An epoll instance watching <paramref name="listener"/> for readability, one of several that share it
    /// (EPOLLEXCLUSIVE; plain EPOLLIN on a kernel older than 4.5), and <paramref name="stopEvent"/>. Owned by the caller.
    /// </summary>
    public static SafeFileHandle CreateAcceptWaiter(SafeSocketHandle listener, SafeFileHandle stopEvent)
    {
        var epoll = epoll_create1(EPOLL_CLOEXEC);
        if (epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1 failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        var waiter = new SafeFileHandle(epoll, ownsHandle: true);
        var added = false;
        try
        {
            listener.DangerousAddRef(ref added);
            var fd = (int)listener.DangerousGetHandle();
            // The stop event wakes every thread; the socket one (EPOLLEXCLUSIVE), or every one on a kernel older than 4.5,
            // which refuses the flag with EINVAL — still correct.
            if (!Watch(epoll, (int)stopEvent.DangerousGetHandle(), EPOLLIN)
                || (!Watch(epoll, fd, EPOLLIN | EPOLLEXCLUSIVE) && !Watch(epoll, fd, EPOLLIN)))
            {
                throw new InvalidOperationException($"epoll_ctl failed (errno {Marshal.GetLastPInvokeError()}).");
            }

            return waiter;
        }
        catch
        {
            waiter.Dispose();
            throw;
        }
        finally
        {
            if (added)
            {
                listener.DangerousRelease();
            }
        }
    }

    /// <summary>Adds <paramref name="fd"/> to the epoll instance for <paramref name="events"/>; false on failure (errno set).</summary>
    private static bool Watch(int epoll, int fd, uint events)
    {
        var registration = stackalloc byte[EpollEventBufferLength];
        new Span<byte>(registration, EpollEventBufferLength).Clear();
        *(uint*)registration = events;
        return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, registration) == 0;
    }

    /// <summary>Blocks until what the waiter watches is readable (a connection, or the stop event): 0, or an errno.</summary>
    public static int WaitReadable(SafeFileHandle waiter)
    {
        var added = false;
        try
        {
            waiter.DangerousAddRef(ref added);
            var events = stackalloc byte[EpollEventBufferLength];
            while (true)
            {
                if (epoll_wait((int)waiter.DangerousGetHandle(), events, 1, -1) >= 0)
                {
                    return 0;
                }

                if (Marshal.GetLastPInvokeError() is not EINTR and var errno)
                {
                    return errno;
                }
            }
        }
        finally
        {
            if (added)
            {
                waiter.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, void* @event);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);
}
