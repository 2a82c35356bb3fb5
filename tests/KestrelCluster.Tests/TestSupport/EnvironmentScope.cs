// Sets environment variables for the life of a cluster under test and restores them after. Workers read the
// app's configuration, not the test's: environment variables are what reaches both the primary (this test
// process) and the workers it starts. Cluster tests run one at a time (ClusterCollection), so this is safe.
namespace KestrelCluster.Tests.TestSupport;

internal sealed class EnvironmentScope : IDisposable
{
    private readonly Dictionary<string, string?> _previous = [];

    public EnvironmentScope(IReadOnlyDictionary<string, string?> variables)
    {
        foreach (var (name, value) in variables)
        {
            _previous[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, value);
        }
    }

    public void Dispose()
    {
        foreach (var (name, value) in _previous)
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }
}
