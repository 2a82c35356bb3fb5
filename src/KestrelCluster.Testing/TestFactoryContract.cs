// What this package tells KestrelCluster (and KestrelCluster tells its workers): the keys of the primary's configuration
// that name the factory, and the AppContext switch a worker sets while it creates the factory. KestrelCluster reads the
// same strings (Protocol/TestFactoryReference.cs, Worker/TestFactoryHook.cs); both packages ship together.
namespace KestrelCluster.Testing;

internal static class TestFactoryContract
{
    public const string AssemblyKey = "KestrelCluster:TestFactory:Assembly";
    public const string TypeKey = "KestrelCluster:TestFactory:Type";
    public const string WorkerSwitch = "KestrelCluster.TestFactoryWorker";
}
