// Every test that starts a cluster belongs to this collection: they run one at a time (2 cores here; several
// clusters at once turn into timeouts), and they share one running cluster where they can.
namespace KestrelCluster.Tests.TestSupport;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "Cluster";
}
