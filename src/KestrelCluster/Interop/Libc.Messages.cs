// sendmsg and recvmsg with SCM_RIGHTS ancillary data: the fd passing itself, with the cmsg arithmetic of glibc's
// CMSG_SPACE and CMSG_NXTHDR. Part of Libc (its layouts and ABI check are in Libc.cs).
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    private static readonly int s_cmsgHeaderSize = sizeof(CMsgHdr);

    /// <summary>
    /// Sends one message with <paramref name="fds"/> attached, without blocking and without SIGPIPE.
    /// Returns 0 on success, else the errno (EAGAIN when the peer's queue is full, EPIPE/ECONNRESET when it is gone).
    /// </summary>
    public static int SendMessage(SafeSocketHandle socket, ReadOnlySpan<byte> payload, ReadOnlySpan<int> fds)
    {
        if (fds.Length > MaxFdsPerSend)
        {
            throw new ArgumentOutOfRangeException(nameof(fds), $"At most {MaxFdsPerSend} fds fit in one message.");
        }

        var addRef = false;
        try
        {
            socket.DangerousAddRef(ref addRef);
            var fd = (int)socket.DangerousGetHandle();
            var controlLength = fds.IsEmpty ? 0 : CmsgSpace(fds.Length * sizeof(int));
            var control = stackalloc byte[Math.Max(controlLength, 1)];

            fixed (byte* payloadPtr = payload)
            {
                var iov = new IoVec { Base = payloadPtr, Length = (nuint)payload.Length };
                var msg = new MsgHdr { Iov = &iov, IovLen = 1 };
                if (!fds.IsEmpty)
                {
                    new Span<byte>(control, controlLength).Clear();
                    var cmsg = (CMsgHdr*)control;
                    cmsg->Len = (nuint)(s_cmsgHeaderSize + (fds.Length * sizeof(int)));
                    cmsg->Level = SOL_SOCKET;
                    cmsg->Type = SCM_RIGHTS;
                    fds.CopyTo(new Span<int>(control + s_cmsgHeaderSize, fds.Length));
                    msg.Control = control;
                    msg.ControlLen = (nuint)controlLength;
                }

                while (true)
                {
                    if (sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
                    {
                        return 0;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        return errno;
                    }
                }
            }
        }
        finally
        {
            if (addRef)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Receives one message without blocking. Attached fds are opened close-on-exec (so they never leak into
    /// processes the worker spawns) and written to <paramref name="fds"/>. Returns 0 on success (with
    /// <paramref name="bytesReceived"/> 0 meaning the peer closed), else the errno (EAGAIN: nothing queued).
    /// <paramref name="truncated"/> is set when the message or its fds did not fit: a protocol violation.
    /// </summary>
    public static int ReceiveMessage(SafeSocketHandle socket, Span<byte> buffer, Span<int> fds,
        out int bytesReceived, out int fdCount, out bool truncated)
    {
        var errno = ReceiveMessage(socket, buffer, fds, out bytesReceived, out fdCount, out truncated, out var descriptorsLost);
        truncated |= descriptorsLost;
        return errno;
    }

    /// <summary>
    /// <see cref="ReceiveMessage(SafeSocketHandle, Span{byte}, Span{int}, out int, out int, out bool)"/>, telling apart
    /// <paramref name="truncated"/> (the message did not fit, or it carried more fds than <paramref name="fds"/> holds: a
    /// protocol violation) and <paramref name="descriptorsLost"/> (MSG_CTRUNC: the kernel could not install every fd
    /// sent, and closed the rest; at this process's open-files limit, the fds received are the first ones sent).
    /// </summary>
    public static int ReceiveMessage(SafeSocketHandle socket, Span<byte> buffer, Span<int> fds,
        out int bytesReceived, out int fdCount, out bool truncated, out bool descriptorsLost)
    {
        bytesReceived = 0;
        fdCount = 0;
        truncated = false;
        descriptorsLost = false;

        var addRef = false;
        try
        {
            socket.DangerousAddRef(ref addRef);
            var fd = (int)socket.DangerousGetHandle();
            // Room for as many fds as the caller can take: more would be closed by the kernel (MSG_CTRUNC).
            var controlLength = CmsgSpace(Math.Min(fds.Length, MaxFdsPerSend) * sizeof(int));
            var control = stackalloc byte[controlLength];

            fixed (byte* bufferPtr = buffer)
            {
                var iov = new IoVec { Base = bufferPtr, Length = (nuint)buffer.Length };
                var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = control, ControlLen = (nuint)controlLength };

                nint received;
                while ((received = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        return errno;
                    }
                }

                bytesReceived = (int)received;
                truncated = (msg.Flags & MSG_TRUNC) != 0;
                descriptorsLost = (msg.Flags & MSG_CTRUNC) != 0;

                // Walk the control messages (CMSG_FIRSTHDR / CMSG_NXTHDR) and collect every SCM_RIGHTS fd.
                var offset = 0;
                while (offset + s_cmsgHeaderSize <= (int)msg.ControlLen)
                {
                    var cmsg = (CMsgHdr*)(control + offset);
                    var length = (int)cmsg->Len;
                    if (length < s_cmsgHeaderSize)
                    {
                        break;
                    }

                    if (cmsg->Level == SOL_SOCKET && cmsg->Type == SCM_RIGHTS)
                    {
                        var count = (length - s_cmsgHeaderSize) / sizeof(int);
                        var received32 = new ReadOnlySpan<int>(control + offset + s_cmsgHeaderSize, count);
                        foreach (var receivedFd in received32)
                        {
                            if (fdCount < fds.Length)
                            {
                                fds[fdCount++] = receivedFd;
                            }
                            else
                            {
                                // More fds than the caller can hold: close the extra ones rather than leak them.
                                close(receivedFd);
                                truncated = true;
                            }
                        }
                    }

                    offset += CmsgAlign(length);
                }

                return 0;
            }
        }
        finally
        {
            if (addRef)
            {
                socket.DangerousRelease();
            }
        }
    }

    private static int CmsgAlign(int length) => (length + sizeof(nuint) - 1) & ~(sizeof(nuint) - 1);

    private static int CmsgSpace(int dataLength) => sizeof(CMsgHdr) + CmsgAlign(dataLength);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(int sockfd, MsgHdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvmsg(int sockfd, MsgHdr* msg, int flags);
}
