// Messages between the primary and the workers for app code (Node's worker.send / process.on('message')).
using System.Text;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace KestrelCluster;

/// <summary>
/// Sends application messages between the primary and its workers over the control channel, and receives
/// them. Available in every role; a message is at most <see cref="MaxMessageSize"/> bytes.
/// </summary>
public interface IClusterMessenger
{
    /// <summary>The largest payload, in bytes (64 KiB). Send big data another way and a reference to it in the message.</summary>
    int MaxMessageSize { get; }

    /// <summary>From a worker: sends a message to the primary's subscribers.</summary>
    /// <param name="payload">The message.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    /// <exception cref="ArgumentException">The payload is larger than <see cref="MaxMessageSize"/>.</exception>
    /// <exception cref="InvalidOperationException">This process is not a worker.</exception>
    ValueTask SendToPrimaryAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>From the primary: sends a message to one worker's subscribers.</summary>
    /// <param name="workerId">The worker's id (see <see cref="IClusterManager.GetWorkers"/>).</param>
    /// <param name="payload">The message.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    /// <exception cref="ArgumentException">The payload is too large, or no connected worker has that id.</exception>
    /// <exception cref="InvalidOperationException">This process is not the primary of a cluster.</exception>
    ValueTask SendToWorkerAsync(int workerId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends a message to the subscribers of every worker (the sender included, when it is a worker: the primary
    /// relays it). When not clustered, the message goes to this process's own subscribers.
    /// </summary>
    /// <param name="payload">The message.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    /// <exception cref="ArgumentException">The payload is larger than <see cref="MaxMessageSize"/>.</exception>
    ValueTask BroadcastAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Calls <paramref name="handler"/> for every message this process receives, off the control channel's thread.</summary>
    /// <param name="handler">The handler; its exceptions are logged.</param>
    /// <returns>Dispose it to unsubscribe.</returns>
    IDisposable Subscribe(Func<ClusterMessage, ValueTask> handler);
}

/// <summary>A message received from the primary or a worker.</summary>
public sealed class ClusterMessage
{
    internal ClusterMessage(int? fromWorkerId, bool broadcast, ReadOnlyMemory<byte> payload)
    {
        FromWorkerId = fromWorkerId;
        IsBroadcast = broadcast;
        Payload = payload;
    }

    /// <summary>The sending worker's id; <see langword="null"/> when the primary sent it.</summary>
    public int? FromWorkerId { get; }

    /// <summary>Whether it was sent to every worker.</summary>
    public bool IsBroadcast { get; }

    /// <summary>The bytes sent.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>The payload as UTF-8 text.</summary>
    /// <returns>The text.</returns>
    public string GetString() => Encoding.UTF8.GetString(Payload.Span);

    /// <summary>The payload as JSON of <typeparamref name="T"/> (sent with the <c>…JsonAsync</c> methods), read by reflection.</summary>
    /// <typeparam name="T">The type sent.</typeparam>
    /// <returns>The value.</returns>
    [RequiresUnreferencedCode(ReflectionJson.Unreferenced)]
    [RequiresDynamicCode(ReflectionJson.Dynamic)]
    public T? Deserialize<T>() => JsonSerializer.Deserialize<T>(Payload.Span);

    /// <summary>The payload as JSON of <typeparamref name="T"/>, read with source-generated metadata (trimming- and AOT-safe).</summary>
    /// <typeparam name="T">The type sent.</typeparam>
    /// <param name="jsonTypeInfo">The metadata of <typeparamref name="T"/>, from a <c>JsonSerializerContext</c>.</param>
    /// <returns>The value.</returns>
    public T? Deserialize<T>(JsonTypeInfo<T> jsonTypeInfo) => JsonSerializer.Deserialize(Payload.Span, jsonTypeInfo);
}

/// <summary>Text and JSON overloads of <see cref="IClusterMessenger"/>.</summary>
// RS0026: each JSON helper has a reflection overload and a JsonTypeInfo one, both with an optional CancellationToken, as
// ASP.NET Core's HttpResponseJsonExtensions do; the required JsonTypeInfo parameter keeps every call unambiguous.
#pragma warning disable RS0026
public static class ClusterMessengerExtensions
{
    /// <summary>Broadcasts UTF-8 text.</summary>
    /// <param name="messenger">The messenger.</param>
    /// <param name="text">The text.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    public static ValueTask BroadcastAsync(this IClusterMessenger messenger, string text, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.BroadcastAsync(Encoding.UTF8.GetBytes(text), cancellationToken);
    }

    /// <summary>Broadcasts <paramref name="value"/> serialized as JSON.</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="value">The value.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    [RequiresUnreferencedCode(ReflectionJson.Unreferenced)]
    [RequiresDynamicCode(ReflectionJson.Dynamic)]
    public static ValueTask BroadcastJsonAsync<T>(this IClusterMessenger messenger, T value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.BroadcastAsync(JsonSerializer.SerializeToUtf8Bytes(value), cancellationToken);
    }

    /// <summary>Broadcasts <paramref name="value"/> serialized as JSON with source-generated metadata (trimming- and AOT-safe).</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="value">The value.</param>
    /// <param name="jsonTypeInfo">The metadata of <typeparamref name="T"/>, from a <c>JsonSerializerContext</c>.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    public static ValueTask BroadcastJsonAsync<T>(this IClusterMessenger messenger, T value, JsonTypeInfo<T> jsonTypeInfo,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.BroadcastAsync(JsonSerializer.SerializeToUtf8Bytes(value, jsonTypeInfo), cancellationToken);
    }

    /// <summary>From a worker: sends <paramref name="value"/> as JSON to the primary.</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="value">The value.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    [RequiresUnreferencedCode(ReflectionJson.Unreferenced)]
    [RequiresDynamicCode(ReflectionJson.Dynamic)]
    public static ValueTask SendJsonToPrimaryAsync<T>(this IClusterMessenger messenger, T value,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.SendToPrimaryAsync(JsonSerializer.SerializeToUtf8Bytes(value), cancellationToken);
    }

    /// <summary>From a worker: sends <paramref name="value"/> as JSON to the primary, with source-generated metadata.</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="value">The value.</param>
    /// <param name="jsonTypeInfo">The metadata of <typeparamref name="T"/>, from a <c>JsonSerializerContext</c>.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    public static ValueTask SendJsonToPrimaryAsync<T>(this IClusterMessenger messenger, T value, JsonTypeInfo<T> jsonTypeInfo,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.SendToPrimaryAsync(JsonSerializer.SerializeToUtf8Bytes(value, jsonTypeInfo), cancellationToken);
    }

    /// <summary>From the primary: sends <paramref name="value"/> as JSON to one worker.</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="workerId">The worker's id.</param>
    /// <param name="value">The value.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    [RequiresUnreferencedCode(ReflectionJson.Unreferenced)]
    [RequiresDynamicCode(ReflectionJson.Dynamic)]
    public static ValueTask SendJsonToWorkerAsync<T>(this IClusterMessenger messenger, int workerId, T value,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.SendToWorkerAsync(workerId, JsonSerializer.SerializeToUtf8Bytes(value), cancellationToken);
    }

    /// <summary>From the primary: sends <paramref name="value"/> as JSON to one worker, with source-generated metadata.</summary>
    /// <typeparam name="T">The type of the value.</typeparam>
    /// <param name="messenger">The messenger.</param>
    /// <param name="workerId">The worker's id.</param>
    /// <param name="value">The value.</param>
    /// <param name="jsonTypeInfo">The metadata of <typeparamref name="T"/>, from a <c>JsonSerializerContext</c>.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message is sent.</returns>
    public static ValueTask SendJsonToWorkerAsync<T>(this IClusterMessenger messenger, int workerId, T value,
        JsonTypeInfo<T> jsonTypeInfo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messenger);
        return messenger.SendToWorkerAsync(workerId, JsonSerializer.SerializeToUtf8Bytes(value, jsonTypeInfo), cancellationToken);
    }
}

#pragma warning restore RS0026

/// <summary>Why the reflection-based JSON helpers are not trimming- or AOT-safe (as ASP.NET Core's own JSON extensions say).</summary>
internal static class ReflectionJson
{
    public const string Unreferenced = "JSON serialization and deserialization might require types that cannot be statically " +
        "analyzed. Use the overload that takes a JsonTypeInfo or JsonSerializerContext, or make sure all of the required types are " +
        "preserved.";

    public const string Dynamic = "JSON serialization and deserialization might require types that cannot be statically analyzed " +
        "and might need runtime code generation. Use System.Text.Json source generation for native AOT applications.";
}
