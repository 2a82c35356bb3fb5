// What waits in a ControlChannelWriter's queue: a frame (with the handle of the fd it carries) and, for a cluster
// message, the sender's task, completed when the kernel has the frame.
using System.Runtime.InteropServices;

namespace KestrelCluster.Protocol;

internal sealed partial class ControlChannelWriter
{
    /// <summary>A frame waiting for the peer; holds a reference on the handle whose fd it carries.</summary>
    private sealed class Pending
    {
        private bool _fdReferenced;

        public Pending(byte[] frame, SafeHandle? fdOwner, PendingMessage? message)
        {
            Frame = frame;
            FdOwner = fdOwner;
            Message = message;
            fdOwner?.DangerousAddRef(ref _fdReferenced);
        }

        public byte[] Frame { get; }

        public SafeHandle? FdOwner { get; }

        public PendingMessage? Message { get; }

        public bool IsCancelled => Message?.Task.IsCanceled == true;

        public void Complete()
        {
            ReleaseFd();
            Message?.TrySetSent();
        }

        public void Abandon(string reason)
        {
            ReleaseFd();
            Message?.TrySetFailed(reason);
        }

        private void ReleaseFd()
        {
            if (_fdReferenced)
            {
                _fdReferenced = false;
                FdOwner!.DangerousRelease();
            }
        }
    }

    /// <summary>The caller's side of a cluster message: completes when sent, fails when refused or abandoned.</summary>
    private sealed class PendingMessage(CancellationToken cancellationToken)
    {
        private readonly TaskCompletionSource _sent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private CancellationTokenRegistration _registration;

        public Task Task => _sent.Task;

        public string RefusedBecause { get; set; } = string.Empty;

        /// <summary>While it waits, cancelling the caller's token cancels the send (the writer then skips it).</summary>
        public void RegisterCancellation(ControlChannelWriter writer)
        {
            if (!_sent.Task.IsCompleted && cancellationToken.CanBeCanceled)
            {
                _registration = cancellationToken.Register(static state =>
                {
                    var (message, writer) = ((PendingMessage, ControlChannelWriter))state!;
                    lock (writer._lock)
                    {
                        // Under the writer's lock: a frame being sent right now is either sent or cancelled, not both.
                        message._sent.TrySetCanceled(message.CancellationToken);
                    }
                }, (this, writer));
            }
        }

        private CancellationToken CancellationToken => cancellationToken;

        public void TrySetSent()
        {
            _sent.TrySetResult();
            _registration.Unregister(); // not Dispose: that would wait for a cancel callback blocked on the lock held here
        }

        public void TrySetFailed(string reason)
        {
            _sent.TrySetException(new InvalidOperationException($"The cluster message was not delivered: {reason}."));
            _registration.Unregister(); // not Dispose: that would wait for a cancel callback blocked on the lock held here
        }
    }
}
