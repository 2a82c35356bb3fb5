// How a line a worker wrote is attributed in the primary's console, per console formatter: the `[worker N]` prefix
// (simple; systemd, after the line's syslog priority), or WorkerId and Slot properties in a JSON line (json). A line
// that is not a log entry (Console.WriteLine, the runtime's crash report) is attributed the same way: in JSON it
// becomes an entry of its own, so every line of the console parses.
using System.Text;
using System.Text.Json;

namespace KestrelCluster.Primary.Launching;

internal enum ConsoleFormat
{
    Simple,
    Systemd,
    Json,
}

internal static class WorkerOutputFormat
{
    /// <summary>The category of a JSON entry made from a line that was not one.</summary>
    public const string OutputCategory = "KestrelCluster.WorkerOutput";

    public static ConsoleFormat FromFormatterName(string? name) => name?.ToLowerInvariant() switch
    {
        "json" => ConsoleFormat.Json,
        "systemd" => ConsoleFormat.Systemd,
        _ => ConsoleFormat.Simple,
    };

    /// <summary>One line as the worker wrote it (UTF-8, without its newline), as the primary writes it, newline included.</summary>
    public static string Attribute(ReadOnlySpan<byte> utf8Line, ConsoleFormat format, int workerId, int slot, bool isError)
    {
        var line = Encoding.UTF8.GetString(utf8Line);
        switch (format)
        {
            case ConsoleFormat.Json:
                return AttributeJson(line, IsJsonObject(utf8Line.Trim(" \t"u8)), workerId, slot, isError) + "\n";

            case ConsoleFormat.Systemd:
                // "<6>Category[0] message": the priority stays first, where journald reads it.
                if (line is ['<', >= '0' and <= '7', '>', ..])
                {
                    return $"{line[..3]}[worker {workerId}] {line[3..]}\n";
                }

                return $"{(isError ? "<3>" : "")}[worker {workerId}] {line}\n";

            default:
                return $"[worker {workerId}] {line}\n";
        }
    }

    private static string AttributeJson(string line, bool isJsonObject, int workerId, int slot, bool isError)
    {
        var properties = $"\"WorkerId\":{workerId},\"Slot\":{slot}";
        if (isJsonObject)
        {
            var trimmed = line.AsSpan().Trim();
            var close = trimmed.LastIndexOf('}');
            var body = trimmed[1..close].Trim();
            return body.IsEmpty ? $"{{{properties}}}" : $"{{{properties},{body}}}";
        }

        var entry = new StringBuilder(line.Length + 128);
        entry.Append("{\"EventId\":0,\"LogLevel\":\"").Append(isError ? "Error" : "Information")
            .Append("\",\"Category\":\"").Append(OutputCategory).Append("\",\"Message\":")
            .Append(JsonSerializer.Serialize(line, WorkerOutputJsonContext.Default.String))
            .Append(',').Append(properties).Append('}');
        return entry.ToString();
    }

    /// <summary>Whether the line is one JSON object and nothing else (read from the bytes the pipe gave: no copy).</summary>
    private static bool IsJsonObject(ReadOnlySpan<byte> utf8)
    {
        if (utf8 is not [(byte)'{', .., (byte)'}'])
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(utf8);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            reader.Skip();
            return !reader.Read(); // nothing after the object
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class WorkerOutputJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
