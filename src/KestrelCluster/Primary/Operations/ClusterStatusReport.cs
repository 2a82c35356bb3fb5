// The cluster as the primary sees it, as JSON: what MapClusterStatus returns (through a worker's status query)
// and what `kestrel-cluster status` prints. Written with Utf8JsonWriter: no reflection, and nothing per request
// beyond the bytes themselves. The shape is documented in docs/operating.md (Status).
using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Supervision;

namespace KestrelCluster.Primary.Operations;

internal sealed class ClusterStatusReport
{
    private static readonly string s_libraryVersion = VersionOf(typeof(ClusterStatusReport).Assembly);
    private static readonly Lazy<DateTimeOffset> s_startedAt = new(() =>
    {
        using var self = Process.GetCurrentProcess();
        return new DateTimeOffset(self.StartTime.ToUniversalTime(), TimeSpan.Zero);
    });

    private static readonly Lazy<string> s_appVersion = new(() => Assembly.GetEntryAssembly() is { } entry ? VersionOf(entry) : "");

    /// <summary>The running app's version (its entry assembly's informational version), read once.</summary>
    public static string AppVersion => s_appVersion.Value;

    private readonly WorkerPool _pool;
    private readonly HandoffDispatcher _dispatcher;
    private readonly ClusterContext _context;
    private readonly string _scheduling;
    private readonly Func<IReadOnlyCollection<string>> _endpoints;
    private readonly Func<int> _upgradingTo;
    private readonly int? _upgradedFrom;

    public ClusterStatusReport(WorkerPool pool, HandoffDispatcher dispatcher, ClusterContext context, string scheduling,
        Func<IReadOnlyCollection<string>> endpoints, Func<int>? upgradingTo = null, int? upgradedFrom = null)
    {
        _upgradingTo = upgradingTo ?? (static () => 0);
        _upgradedFrom = upgradedFrom;
        _pool = pool;
        _dispatcher = dispatcher;
        _context = context;
        _scheduling = scheduling;
        _endpoints = endpoints;
    }

    /// <summary>The status of the whole cluster, as UTF-8 JSON.</summary>
    public byte[] Write()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            var workers = _pool.Workers;
            var slots = _pool.LiveSlots();
            json.WriteStartObject();
            WritePrimary(json, workers, slots);
            json.WriteStartArray("workers");
            foreach (var worker in workers)
            {
                WriteWorker(json, worker);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>The status of a process that runs no workers (not clustered), in the same shape.</summary>
    public static byte[] WriteStandalone(string appVersion, IReadOnlyCollection<string> endpoints)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("primary");
            WriteProcess(json, "standalone", "running", appVersion);
            WriteStrings(json, "endpoints", endpoints);
            json.WriteNumber("workerCount", 0);
            json.WriteEndObject();
            json.WriteStartArray("workers");
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private void WritePrimary(Utf8JsonWriter json, IReadOnlyList<WorkerProcess> workers, List<WorkerSlot> slots)
    {
        json.WriteStartObject("primary");
        WriteProcess(json, "cluster", _pool.IsStopping ? "stopping" : "running", AppVersion);
        json.WriteString("scheduling", _scheduling);
        WriteStrings(json, "endpoints", _endpoints());
        json.WriteNumber("workerCount", _context.WorkerCount);
        json.WriteNumber("readySlots", slots.Count(s => s.HasServingWorker));
        WriteProcessId(json, "upgradingTo", _upgradingTo() is > 0 and var successor ? successor : null);
        WriteProcessId(json, "upgradedFrom", _upgradedFrom);
        json.WriteNumber("acceptedConnections", _dispatcher.Accepted);
        json.WriteNumber("pendingConnections", _dispatcher.WaitingCount);
        json.WriteNumber("redispatchedConnections", _dispatcher.Redispatched);
        json.WriteNumber("heldConnections", _dispatcher.FdBudget.Held);
        json.WriteNumber("connectionBudget", _dispatcher.FdBudget.Budget);
        json.WriteNumber("openFilesLimit", _dispatcher.FdBudget.Limit);
        json.WriteNumber("generation", _pool.Generation);

        // A slot with no live worker: between a crash and its replacement, or stopped by the crash-loop breaker.
        json.WriteStartArray("emptySlots");
        foreach (var slot in slots.Where(s => !workers.Any(w => w.Slot == s.Index)))
        {
            json.WriteStartObject();
            json.WriteNumber("slot", slot.Index);
            if (slot.StartError is { } error)
            {
                // Why its worker could not be started, and how many times in a row (retried until it succeeds).
                json.WriteString("startError", error);
                json.WriteNumber("failedStarts", Volatile.Read(ref slot.FailedStarts));
            }

            WriteExit(json, slot.LastExit);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>A primary upgrade's other side: the new primary's pid (while starting, and after the handover) or the old one's.</summary>
    private static void WriteProcessId(Utf8JsonWriter json, string name, int? processId)
    {
        if (processId is { } pid)
        {
            json.WriteNumber(name, pid);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private void WriteWorker(Utf8JsonWriter json, WorkerProcess worker)
    {
        var heartbeat = worker.LastHeartbeat;
        var (requestsPerSecond, cpuPercent) = worker.Rates;
        var slot = _pool.SlotOf(worker);
        json.WriteStartObject();
        json.WriteNumber("id", worker.Id);
        json.WriteNumber("slot", worker.Slot);
        json.WriteNumber("pid", worker.ProcessId);
        json.WriteString("state", worker.State switch
        {
            WorkerState.Ready => "ready",
            WorkerState.Draining => "draining",
            _ => "starting",
        });
        json.WriteNumber("generation", worker.Generation);
        json.WriteString("startedAt", worker.StartedAt);
        json.WriteNumber("restarts", worker.Restarts);

        // The slot's previous worker, unless this worker is the one being replaced (then the slot's newer worker shows it).
        WriteExit(json, slot?.Current == worker || slot?.Current is null ? slot?.LastExit : null);
        json.WriteNumber("connectionsHandedOff", worker.Handoffs);
        json.WriteNumber("openConnections", worker.Channel?.OpenConnections ?? 0);
        json.WriteNumber("connectionsInFlight", worker.Channel?.InFlightCount ?? 0);
        json.WriteNumber("requests", heartbeat.Requests);
        json.WriteNumber("requestsPerSecond", Math.Round(requestsPerSecond, 1));
        json.WriteNumber("cpuPercent", Math.Round(cpuPercent, 1));
        json.WriteNumber("memoryBytes", heartbeat.WorkingSetBytes);
        json.WriteNumber("gcHeapBytes", heartbeat.GcHeapBytes);
        json.WriteNumber("threadPoolQueueLength", heartbeat.PendingWorkItems);
        json.WriteNumber("heartbeatLagMs", heartbeat.ThreadPoolLagMilliseconds);
        json.WriteNumber("lastHeartbeatMsAgo", (long)worker.SilentFor.TotalMilliseconds);
        json.WriteEndObject();
    }

    /// <summary>What both shapes say of the process itself.</summary>
    private static void WriteProcess(Utf8JsonWriter json, string mode, string state, string appVersion)
    {
        json.WriteNumber("pid", Environment.ProcessId);
        json.WriteString("mode", mode);
        json.WriteString("state", state);
        json.WriteString("startedAt", s_startedAt.Value);
        json.WriteString("version", appVersion);
        json.WriteString("kestrelClusterVersion", s_libraryVersion);
    }

    private static void WriteExit(Utf8JsonWriter json, WorkerExit? exit)
    {
        if (exit is null)
        {
            json.WriteNull("lastExit");
            return;
        }

        json.WriteStartObject("lastExit");
        json.WriteNumber("workerId", exit.WorkerId);
        json.WriteNumber("pid", exit.ProcessId);
        if (exit.Signal is { } signal)
        {
            json.WriteNull("code");
            json.WriteString("signal", WorkerExit.SignalName(signal));
        }
        else
        {
            json.WriteNumber("code", exit.ExitCode);
            json.WriteNull("signal");
        }

        json.WriteString("reason", WorkerExit.Describe(exit.Reason));
        json.WriteString("at", exit.At);
        json.WriteEndObject();
    }

    private static void WriteStrings(Utf8JsonWriter json, string name, IReadOnlyCollection<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }

    private static string VersionOf(Assembly assembly) =>
        assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
            ?? assembly.GetName().Version?.ToString() ?? "";
}
