// Hot reload (dotnet watch) calls UpdateApplication after it applied a change to this process. In a primary that
// means the workers did not get it: the supervisor warns.
[assembly: System.Reflection.Metadata.MetadataUpdateHandler(typeof(KestrelCluster.Primary.Operations.HotReloadNotice))]

namespace KestrelCluster.Primary.Operations;

internal static class HotReloadNotice
{
    /// <summary>Raised after every hot reload applied to this process.</summary>
    public static event Action? Applied;

    /// <summary>Called by the runtime's hot reload agent (found by name).</summary>
    internal static void UpdateApplication(Type[]? updatedTypes) => Applied?.Invoke();
}
