// Role detection: a worker is a process started by the primary with these environment variables (Node's
// NODE_UNIQUE_ID). They are read once and removed, so processes the worker starts are not mistaken for workers.
using System.Globalization;

namespace KestrelCluster.Protocol;

internal sealed record WorkerIdentity(int WorkerId, int SlotIndex, int WorkerCount, string ControlPath, byte[] Secret, string? Urls,
    bool PreferHostingUrls, int PrimaryProcessId, string? ConsoleFormatter = null, string? TestFactory = null)
{
    /// <summary>
    /// Under a test host: the test's ClusterWebApplicationFactory, as "assembly path|type name", whose ConfigureWebHost each
    /// worker runs too (KestrelCluster.Testing; Worker/Lifecycle/TestFactoryHook).
    /// </summary>
    public const string TestFactoryVariable = "KESTRELCLUSTER_TEST_FACTORY";

    /// <summary>The primary's console formatter: a worker formats as the primary does (it writes the worker's lines).</summary>
    public const string ConsoleFormatterVariable = "KESTRELCLUSTER_CONSOLE_FORMATTER";

    public const string WorkerIdVariable = "KESTRELCLUSTER_WORKER_ID";
    public const string SlotVariable = "KESTRELCLUSTER_SLOT";
    public const string WorkerCountVariable = "KESTRELCLUSTER_WORKER_COUNT";
    public const string ControlPathVariable = "KESTRELCLUSTER_CONTROL";
    public const string SecretVariable = "KESTRELCLUSTER_SECRET";
    public const string UrlsVariable = "KESTRELCLUSTER_URLS";
    public const string PreferHostingUrlsVariable = "KESTRELCLUSTER_PREFER_URLS";
    public const string PrimaryProcessIdVariable = "KESTRELCLUSTER_PRIMARY_PID";

    private static readonly Lazy<WorkerIdentity?> s_current = new(ReadAndClearEnvironment);

    /// <summary>This process's identity when it is a worker; <see langword="null"/> in the primary.</summary>
    public static WorkerIdentity? Current => s_current.Value;

    public IReadOnlyDictionary<string, string> ToEnvironment() => new Dictionary<string, string>
    {
        [WorkerIdVariable] = WorkerId.ToString(CultureInfo.InvariantCulture),
        [SlotVariable] = SlotIndex.ToString(CultureInfo.InvariantCulture),
        [WorkerCountVariable] = WorkerCount.ToString(CultureInfo.InvariantCulture),
        [ControlPathVariable] = ControlPath,
        [SecretVariable] = Convert.ToBase64String(Secret),
        [UrlsVariable] = Urls ?? string.Empty,
        [PreferHostingUrlsVariable] = PreferHostingUrls ? "1" : "0",
        [PrimaryProcessIdVariable] = PrimaryProcessId.ToString(CultureInfo.InvariantCulture),
        [ConsoleFormatterVariable] = ConsoleFormatter ?? string.Empty,
        [TestFactoryVariable] = TestFactory ?? string.Empty,
        [ControlProtocol.VersionVariable] = ControlProtocol.Version.ToString(CultureInfo.InvariantCulture),
    };

    private static WorkerIdentity? ReadAndClearEnvironment()
    {
        var id = Environment.GetEnvironmentVariable(WorkerIdVariable);
        if (string.IsNullOrEmpty(id))
        {
            return null;
        }

        try
        {
            // First, before anything else is read: a primary of another protocol may have written the rest differently.
            var protocol = Environment.GetEnvironmentVariable(ControlProtocol.VersionVariable) is { Length: > 0 } text
                ? int.Parse(text, CultureInfo.InvariantCulture)
                : 0; // a primary from before the protocol had a version
            if (protocol != ControlProtocol.Version)
            {
                throw new ControlProtocolMismatchException(ControlProtocol.PrimaryMismatch(protocol));
            }

            var urls = Environment.GetEnvironmentVariable(UrlsVariable);
            return new WorkerIdentity(
                int.Parse(id, CultureInfo.InvariantCulture),
                int.Parse(Require(SlotVariable), CultureInfo.InvariantCulture),
                int.Parse(Require(WorkerCountVariable), CultureInfo.InvariantCulture),
                Require(ControlPathVariable),
                Convert.FromBase64String(Require(SecretVariable)),
                string.IsNullOrEmpty(urls) ? null : urls,
                Environment.GetEnvironmentVariable(PreferHostingUrlsVariable) == "1",
                int.Parse(Require(PrimaryProcessIdVariable), CultureInfo.InvariantCulture),
                Environment.GetEnvironmentVariable(ConsoleFormatterVariable) is { Length: > 0 } formatter ? formatter : null,
                Environment.GetEnvironmentVariable(TestFactoryVariable) is { Length: > 0 } factory ? factory : null);
        }
        catch (FormatException e)
        {
            throw new InvalidOperationException($"{WorkerIdVariable} is set, so this process is a cluster worker, but its cluster " +
                $"environment is malformed. Workers are started by the primary; do not set these variables by hand.", e);
        }
        finally
        {
            foreach (var name in new[] { WorkerIdVariable, SlotVariable, WorkerCountVariable, ControlPathVariable, SecretVariable,
                UrlsVariable, PreferHostingUrlsVariable, PrimaryProcessIdVariable, ConsoleFormatterVariable, TestFactoryVariable,
                ControlProtocol.VersionVariable })
            {
                Environment.SetEnvironmentVariable(name, null);
            }
        }

        static string Require(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new FormatException($"{name} is missing.");
    }
}
