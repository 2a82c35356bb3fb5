// A worker's control channel at its open-files limit (see WorkerControlChannel.cs): it keeps ControlProtocol.WorkerFdReserve
// fds free beside its connections, refuses a handed-off socket that would eat into them or whose fd never arrived
// (MSG_CTRUNC), tells the primary once per Handoff frame (FdLimit), and says so in the log once per interval.
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker.Connections;

internal sealed partial class WorkerControlChannel
{
    // The open-files limit (it can be changed from outside: prlimit) and the fds open besides connections; see ReadFdLimit.
    // Both are the reader thread's.
    private readonly LogThrottle _fdLimitLog = new(TimeSpan.FromSeconds(10));
    private long _fdLimit;
    private long _fdLimitReadAt;
    private int _otherFds;
    private bool _fdLimitReported; // an FdLimit frame went out for the Handoff frame being read

    /// <summary>
    /// Whether taking <paramref name="fd"/> (with <paramref name="pending"/> more taken from the same frame) would eat into
    /// the fds this worker keeps free (see <see cref="ReadFdLimit"/>).
    /// </summary>
    private bool InFdReserve(int fd, int pending)
    {
        var usable = _fdLimit - ControlProtocol.WorkerFdReserve;
        return fd >= usable || Acknowledgements.OpenConnections + _otherFds + pending >= usable;
    }

    /// <summary>
    /// The open-files limit, read at every Handoff frame, and the fds open besides connections, counted
    /// again when a second has passed or fds were lost. Both checks keep the reserve: the count (connections and everything
    /// else) and the fd number (fds are allocated lowest first, so fd n means n fds below it are open, whatever the count
    /// last said).
    /// </summary>
    private void ReadFdLimit(bool now)
    {
        // One getrlimit per Handoff frame (a fraction of the recvmsg that brought it); the count of /proc/self/fd once a second.
        _fdLimit = Libc.OpenFilesLimit.Soft;
        if (now || Environment.TickCount64 - _fdLimitReadAt >= 1000)
        {
            _fdLimitReadAt = Environment.TickCount64;
            _otherFds = Math.Max(0, Libc.CountOpenDescriptors() - Acknowledgements.OpenConnections);
        }
    }

    /// <summary>
    /// Refuses a handed-off connection for want of an fd: the primary routes it to another worker and, told once per burst
    /// (an FdLimit frame, before the refusal), offers this worker nothing until it has closed some of its connections.
    /// Logged once per interval.
    /// </summary>
    private void RefuseAtFdLimit(long handoffId)
    {
        if (!_fdLimitReported)
        {
            _fdLimitReported = true;
            TrySend(ControlFrames.FdLimit(_fdLimit));
        }

        Acknowledgements.Acknowledge(handoffId, accepted: false);
        if (_fdLimitLog.Count(out var refused))
        {
            WorkerLog.AtOpenFilesLimit(_logger, _identity.WorkerId, _fdLimit, ControlProtocol.WorkerFdReserve, refused);
        }
    }
}
