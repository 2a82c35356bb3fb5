// The open-files limit (getrlimit/setrlimit RLIMIT_NOFILE), the count of this process's open fds, poll() over many
// sockets at once to find the ones whose client has hung up, and a non-blocking recv/send for the primary's last word to
// a client that waited in vain. Part of Libc (its layouts and ABI check are in Libc.cs).
using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    public const int ENOMEM = 12;

    private const int RLIMIT_NOFILE = 7; // x64 and arm64 alike
    private const short POLLHUP = 0x10;
    private const short POLLERR = 0x08;
    private const short POLLRDHUP = 0x2000;

    /// <summary>The open-files limit, soft (what applies) and hard (what the soft limit may be raised to).</summary>
    public static (long Soft, long Hard) OpenFilesLimit
    {
        get
        {
            RLimit limit;
            return getrlimit(RLIMIT_NOFILE, &limit) == 0 ? (Clamp(limit.Current), Clamp(limit.Max)) : (long.MaxValue, long.MaxValue);
        }
    }

    /// <summary>
    /// Raises the soft open-files limit to the hard one (what nginx's worker_rlimit_nofile and systemd's services do):
    /// the soft default (1,024 on most distributions) is far below what a server needs. Returns the soft limit before.
    /// </summary>
    public static long RaiseOpenFilesLimit()
    {
        RLimit limit;
        if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        {
            return long.MaxValue;
        }

        var before = Clamp(limit.Current);
        if (limit.Current < limit.Max)
        {
            limit.Current = limit.Max;
            _ = setrlimit(RLIMIT_NOFILE, &limit);
        }

        return before;
    }

    /// <summary>How many fds this process has open now (the entries of /proc/self/fd, less the one reading it).</summary>
    public static int CountOpenDescriptors()
    {
        try
        {
            return Math.Max(0, Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() - 1);
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>
    /// Sets <paramref name="hungUp"/>[i] for each socket of <paramref name="fds"/> whose peer has closed or reset it
    /// (POLLRDHUP, POLLHUP, POLLERR), without waiting. False if poll failed (nothing is known then).
    /// </summary>
    public static bool FindHungUp(ReadOnlySpan<int> fds, Span<bool> hungUp)
    {
        var polls = new PollFd[fds.Length];
        for (var i = 0; i < fds.Length; i++)
        {
            polls[i] = new PollFd { Fd = fds[i], Events = POLLRDHUP };
        }

        fixed (PollFd* pollsPtr = polls)
        {
            int ready;
            while ((ready = poll(pollsPtr, (nuint)polls.Length, 0)) < 0)
            {
                if (Marshal.GetLastPInvokeError() != EINTR)
                {
                    return false;
                }
            }
        }

        for (var i = 0; i < fds.Length; i++)
        {
            hungUp[i] = (polls[i].Revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
        }

        return true;
    }

    /// <summary>Reads what a socket has received, without waiting: the byte count, 0 at the end, or -errno (-EAGAIN: nothing).</summary>
    public static int ReceiveNow(int fd, Span<byte> buffer)
    {
        fixed (byte* bufferPtr = buffer)
        {
            while (true)
            {
                var received = recv(fd, bufferPtr, (nuint)buffer.Length, MSG_DONTWAIT);
                if (received >= 0)
                {
                    return (int)received;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
        }
    }

    /// <summary>Sends on a socket without waiting and without SIGPIPE: the byte count sent, or -errno.</summary>
    public static int SendNow(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* dataPtr = data)
        {
            while (true)
            {
                var sent = send(fd, dataPtr, (nuint)data.Length, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (sent >= 0)
                {
                    return (int)sent;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
        }
    }

    private static long Clamp(ulong value) => value > long.MaxValue ? long.MaxValue : (long)value;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, RLimit* limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, RLimit* limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int sockfd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int sockfd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint count, int timeout);
}
