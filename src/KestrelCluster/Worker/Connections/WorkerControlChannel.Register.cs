// Connecting to the primary (once, on the first endpoint Kestrel binds) and registering each endpoint: the primary
// answers with the listener that serves it and its real bound endpoint, so the worker's "Now listening on" is true.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Worker.Connections;

internal sealed partial class WorkerControlChannel
{
    /// <summary>
    /// Asks the primary which of its listeners serves <paramref name="endpoint"/>; returns its id, its real endpoint,
    /// and in shared mode the fd of the listening socket itself (else -1).
    /// </summary>
    public async Task<(int ListenerId, EndPoint BoundEndPoint, int SharedFd)> RegisterAsync(EndPoint endpoint,
        CancellationToken cancellationToken)
    {
        await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);

        var requestId = Interlocked.Increment(ref _nextRequestId);
        var reply = new TaskCompletionSource<(int, string, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _registrations[requestId] = reply;
        try
        {
            if (!TrySend(ControlFrames.Register(requestId, endpoint)))
            {
                throw new InvalidOperationException($"Worker {_identity.WorkerId} lost its control channel to the cluster primary " +
                    $"while registering {endpoint}.");
            }

            var (listenerId, text, sharedFd) = await reply.Task.WaitAsync(s_registerTimeout, cancellationToken).ConfigureAwait(false);
            if (listenerId < 0 || !EndpointText.TryParse(text, out var bound))
            {
                if (sharedFd >= 0)
                {
                    Libc.CloseDescriptor(sharedFd);
                }

                throw new InvalidOperationException($"The cluster primary refused endpoint {endpoint}: {text}");
            }

            return (listenerId, bound!, sharedFd);
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"The cluster primary did not answer the registration of {endpoint} within " +
                $"{s_registerTimeout}.", e);
        }
        finally
        {
            _registrations.TryRemove(requestId, out _);
        }
    }

    private async Task EnsureConnectedAsync(CancellationToken cancellationToken)
    {
        if (_socket is not null)
        {
            return;
        }

        await _connectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_socket is not null)
            {
                return;
            }

            var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
            try
            {
                // Synchronous on purpose (a local socket connects at once): an async call would register the socket
                // with the runtime's epoll thread, which every handed-off connection would then wake for nothing.
                socket.Connect(new UnixDomainSocketEndPoint(_identity.ControlPath));
                socket.Send(ControlFrames.Hello(_identity.WorkerId, _identity.Secret));
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new InvalidOperationException($"Worker {_identity.WorkerId} cannot reach its cluster primary at " +
                    $"{_identity.ControlPath}: {e.SocketErrorCode}. Is the primary still running?", e);
            }

            // Wakes the reader (it then sees the channel closed) when a send finds the primary gone.
            _writer = new ControlChannelWriter(socket, "KC writer", _ => Libc.Shutdown(socket.SafeHandle));
            _socket = socket;
            _ = ControlChannelThread.Start("KC channel", () => ReceiveLoop(socket));
        }
        finally
        {
            _connectLock.Release();
        }
    }
}
