// Reads what a worker says on its control channel, on a thread of its own, and routes each frame: acks to the
// channel's handoff books, registrations to the listener table, messages to the messenger (which relays broadcasts
// without waiting for anyone), heartbeats to the worker. A frame that does not parse ends the channel.
using System.Net;
using System.Net.Sockets;
using KestrelCluster.Messaging;
using KestrelCluster.Protocol;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Primary.Connections;

internal sealed class WorkerFrameReader(WorkerChannel channel, Socket socket, PrimaryListenerTable listeners, ClusterMessenger? messenger,
    ILogger logger)
{
    public void Start() => _ = ControlChannelThread.Start($"KC channel w{channel.WorkerId}", ReadLoop);

    private void ReadLoop()
    {
        var buffer = new byte[ControlFrames.MaxFrameLength + 1];

        // No room for fds: a worker never sends any; any it sends are closed on receipt (truncated) and drop it.
        var reason = ControlChannelThread.ReadMessages(socket, buffer, [], "the worker closed its control channel",
            (length, _, truncated) =>
            {
                if (truncated || length > ControlFrames.MaxFrameLength || !Handle(buffer.AsSpan(0, length)))
                {
                    ConnectionLog.ProtocolViolation(logger, channel.WorkerId, buffer[0], length);
                    return $"protocol violation: malformed or unexpected frame (type {buffer[0]}, {length} bytes)";
                }

                return null;
            });
        channel.Close(reason);
    }

    private bool Handle(ReadOnlySpan<byte> frame)
    {
        switch ((FrameType)frame[0])
        {
            case FrameType.Ack:
                return channel.OnAcks(frame);

            case FrameType.Register when ControlFrames.TryReadRegister(frame, out var requestId, out var endpoint):
                return Register(requestId, endpoint!);

            case FrameType.Unregister when ControlFrames.TryReadUnregister(frame, out var listenerId):
                channel.ReleaseListener(listenerId);
                return true;

            case FrameType.Message when messenger is not null
                && ControlFrames.TryReadMessage(frame, out var broadcast, out var from, out var payload) && from == channel.WorkerId:
                messenger.OnFrame(channel.WorkerId, broadcast, payload.ToArray());
                return true;

            case FrameType.ConnectionsClosed when ControlFrames.TryReadConnectionsClosed(frame, out var closed):
                channel.OnConnectionsClosed(closed);
                return true;

            case FrameType.Heartbeat when ControlFrames.TryReadHeartbeat(frame, out var heartbeat):
                channel.OnHeartbeat(heartbeat);
                return true;

            case FrameType.StatusQuery when ControlFrames.TryReadStatusQuery(frame, out var queryId):
                channel.AnswerStatusQuery(queryId);
                return true;

            case FrameType.FdLimit when ControlFrames.TryReadFdLimit(frame, out _):
                channel.OnFdLimit();
                return true;

            case FrameType.Ready when frame.Length == 1:
                return channel.OnReady();

            default:
                return false;
        }
    }

    /// <summary>Pairs an endpoint the worker's Kestrel binds with the primary's listener, and answers (never blocking).</summary>
    private bool Register(int requestId, EndPoint endpoint)
    {
        var listener = listeners.Match(endpoint, channel.ListenerIds);
        if (listener is null)
        {
            ConnectionLog.RegisterUnmatched(logger, channel.WorkerId, endpoint);
            return channel.TrySendControl(ControlFrames.Registered(requestId, -1,
                $"The primary has no listener for {endpoint}. Workers bind the endpoints the primary bound; configure " +
                    "endpoints in the app or its configuration (which workers share), not only in the test or host that " +
                    "starts the primary."));
        }

        channel.ClaimListener(listener.Id);
        ConnectionLog.ListenerRegistered(logger, channel.WorkerId, listener.Id, listener.EndPoint);

        // In shared mode the worker gets the listening socket itself and accepts on it (Node's SCHED_NONE); in reuseport mode
        // its slot's socket.
        return channel.TrySendControl(ControlFrames.Registered(requestId, listener.Id, EndpointText.Format(listener.EndPoint)),
            listener.SocketForWorker(channel.SlotIndex));
    }
}
