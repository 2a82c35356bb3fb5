// What waits in a ControlChannelWriter's queue: a frame (with a duplicate of the fd it carries) and, for a cluster
// message, the sender's task, completed when the kernel has the frame.
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal sealed partial class ControlChannelWriter
{
    /// <summary>A frame waiting for the peer, with its own duplicate of the fd it carries.</summary>
    private sealed class Pending
    {
        private int _fd;

        /// <param name="frame">The frame, copied.</param>
        /// <param name="fd">A duplicate of the fd to attach, owned by this entry (closed once sent or dropped); -1: none.</param>
        /// <param name="message">The sender's side, for a cluster message; else null.</param>
        public Pending(byte[] frame, int fd, PendingMessage? message)
        {
            Frame = frame;
            _fd = fd;
            Message = message;
        }

        public byte[] Frame { get; }

        public int Fd => _fd;

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
            if (_fd >= 0)
            {
                Libc.CloseDescriptor(_fd); // the kernel passed its own reference on with the message
                _fd = -1;
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
