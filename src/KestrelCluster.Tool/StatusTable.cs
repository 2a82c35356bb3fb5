// The status JSON as an operator reads it, one line per worker, like `pm2 ls`.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KestrelCluster.Tool;

internal static class StatusTable
{
    private static readonly string[] s_headers =
        ["id", "slot", "pid", "state", "gen", "uptime", "restarts", "conns", "open", "req/s", "requests", "cpu", "memory", "gc heap",
            "queue", "lag", "last exit"];

    public static string Format(JsonElement status, DateTimeOffset now)
    {
        var primary = status.GetProperty("primary");
        var text = new StringBuilder();
        var endpoints = string.Join(", ", primary.GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()));
        text.Append(CultureInfo.InvariantCulture, $"Primary pid {primary.GetProperty("pid").GetInt32()}, {primary.GetProperty("mode")}")
            .Append(CultureInfo.InvariantCulture, $", {primary.GetProperty("state")}, up {Age(primary, "startedAt", now)}")
            .Append(CultureInfo.InvariantCulture, $", version {primary.GetProperty("version")}: {endpoints}").AppendLine();
        if (primary.GetProperty("mode").GetString() != "cluster")
        {
            return text.Append("Not clustered: this process serves on its own.").ToString();
        }

        text.Append(CultureInfo.InvariantCulture,
                $"{primary.GetProperty("readySlots")}/{primary.GetProperty("workerCount")} workers ready, ")
            .Append(CultureInfo.InvariantCulture, $"{primary.GetProperty("scheduling")}, generation {primary.GetProperty("generation")}; ")
            .Append(CultureInfo.InvariantCulture, $"connections accepted {primary.GetProperty("acceptedConnections")}, ")
            .Append(CultureInfo.InvariantCulture, $"waiting {primary.GetProperty("pendingConnections")}, ")
            .Append(CultureInfo.InvariantCulture, $"re-routed {primary.GetProperty("redispatchedConnections")}");
        if (primary.TryGetProperty("heldConnections", out var held) && primary.TryGetProperty("connectionBudget", out var budget)
            && primary.TryGetProperty("openFilesLimit", out var limit))
        {
            // Absent from primaries before 0.4.0-preview.3.
            text.Append(CultureInfo.InvariantCulture, $"; held {held} of {budget} (open-files limit {limit})");
        }

        text.AppendLine().AppendLine();

        var rows = new List<string[]> { s_headers };
        foreach (var worker in status.GetProperty("workers").EnumerateArray())
        {
            rows.Add([
                Number(worker, "id"), Number(worker, "slot"), Number(worker, "pid"), worker.GetProperty("state").GetString()!,
                Number(worker, "generation"), Age(worker, "startedAt", now), Number(worker, "restarts"),
                Number(worker, "connectionsHandedOff"), Number(worker, "openConnections"), Number(worker, "requestsPerSecond"),
                Number(worker, "requests"), Number(worker, "cpuPercent") + "%", Bytes(worker, "memoryBytes"), Bytes(worker, "gcHeapBytes"),
                Number(worker, "threadPoolQueueLength"), Number(worker, "heartbeatLagMs") + "ms", Exit(worker.GetProperty("lastExit"), now),
            ]);
        }

        foreach (var slot in primary.GetProperty("emptySlots").EnumerateArray())
        {
            rows.Add(["-", Number(slot, "slot"), "-", "empty", "", "", "", "", "", "", "", "", "", "", "", "",
                slot.TryGetProperty("startError", out var error)
                    ? $"start refused {slot.GetProperty("failedStarts")}x, retrying: {error.GetString()}"
                    : Exit(slot.GetProperty("lastExit"), now)]);
        }

        var widths = Enumerable.Range(0, s_headers.Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (var row in rows)
        {
            text.AppendLine(string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c]))).TrimEnd());
        }

        return text.ToString().TrimEnd();
    }

    private static string Number(JsonElement element, string name) => element.GetProperty(name).GetRawText();

    private static string Bytes(JsonElement element, string name) =>
        string.Create(CultureInfo.InvariantCulture, $"{element.GetProperty(name).GetInt64() / (1024.0 * 1024):0.0} MiB");

    private static string Age(JsonElement element, string name, DateTimeOffset now) =>
        Duration(now - element.GetProperty(name).GetDateTimeOffset());

    private static string Exit(JsonElement exit, DateTimeOffset now)
    {
        if (exit.ValueKind == JsonValueKind.Null)
        {
            return "-";
        }

        var how = exit.GetProperty("signal") is { ValueKind: JsonValueKind.String } signal
            ? signal.GetString()
            : $"code {exit.GetProperty("code").GetRawText()}";
        return $"worker {Number(exit, "workerId")} {how} ({exit.GetProperty("reason").GetString()}) {Age(exit, "at", now)} ago";
    }

    private static string Duration(TimeSpan age) => age switch
    {
        { TotalSeconds: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{Math.Max(0, (int)age.TotalSeconds)}s"),
        { TotalMinutes: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalMinutes}m"),
        { TotalHours: < 48 } => string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalHours}h"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalDays}d"),
    };
}
