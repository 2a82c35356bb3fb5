// Which WebApplicationFactory started the primary, so that each worker runs its ConfigureWebHost too. The factory
// (ClusterWebApplicationFactory, package KestrelCluster.Testing, which compiles against this type) writes these keys into
// the primary's configuration; the primary passes "assembly path|type name" to its workers
// (WorkerIdentity.TestFactoryVariable).
using Microsoft.Extensions.Configuration;

namespace KestrelCluster.Protocol;

internal sealed record TestFactoryReference(string AssemblyPath, string TypeName)
{
    public const string AssemblyKey = "KestrelCluster:TestFactory:Assembly";
    public const string TypeKey = "KestrelCluster:TestFactory:Type";

    /// <summary>Set (AppContext) in a worker while it creates the factory: ClusterWebApplicationFactory.IsClusterWorker.</summary>
    public const string WorkerSwitch = "KestrelCluster.TestFactoryWorker";

    /// <summary>What a worker's environment carries.</summary>
    public string Replay => AssemblyPath + "|" + TypeName;

    public static TestFactoryReference? FromConfiguration(IConfiguration configuration) =>
        configuration[AssemblyKey] is { Length: > 0 } assembly && configuration[TypeKey] is { Length: > 0 } type
            ? new(assembly, type)
            : null;

    public static TestFactoryReference Parse(string replay)
    {
        var separator = replay.LastIndexOf('|');
        return separator > 0 && separator < replay.Length - 1
            ? new(replay[..separator], replay[(separator + 1)..])
            : throw new FormatException($"{WorkerIdentity.TestFactoryVariable} is \"{replay}\", not \"assembly path|type name\".");
    }
}
