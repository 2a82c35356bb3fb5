// A worker process that could not be started at all (fork/exec failed), and whether that is for want of a resource
// the machine may have again in a moment (fds, processes, memory) or for a reason that retrying will not change (the
// executable is gone, not executable).
using System.ComponentModel;
using KestrelCluster.Interop;

namespace KestrelCluster.Primary.Launching;

internal sealed class WorkerStartException : Exception
{
    public WorkerStartException(string message, Exception innerException)
        : base(message, innerException)
    {
        IsTransient = innerException is Win32Exception { NativeErrorCode: Libc.EMFILE or Libc.ENFILE or Libc.EAGAIN or Libc.ENOMEM };
    }

    public WorkerStartException()
    {
    }

    public WorkerStartException(string message)
        : base(message)
    {
    }

    /// <summary>The id the worker would have had.</summary>
    public int WorkerId { get; init; }

    /// <summary>EMFILE, ENFILE, EAGAIN or ENOMEM: the start is retried until it succeeds, and counts as no crash.</summary>
    public bool IsTransient { get; }

    /// <summary>What went wrong, in a few words ("Too many open files").</summary>
    public string Reason => InnerException is Win32Exception win32
        ? $"{System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(win32.NativeErrorCode)} (errno {win32.NativeErrorCode})"
        : InnerException?.Message ?? Message;
}
