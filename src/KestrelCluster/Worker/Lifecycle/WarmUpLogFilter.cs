// While a worker warms up (WorkerWarmUp), only warnings and errors are logged (and nothing while it finds the protocol,
// whose wrong guesses Kestrel logs as errors): its thousands of requests to itself
// would otherwise fill the log of an app that logs requests at Information. Every filter rule the app configured is
// kept and wrapped; the rule-less default gets one with the same minimum level. Applied only when Cluster:WarmUpPath is
// set; outside the warm-up the added check is then one read of a flag, made only for messages that are enabled anyway
// (below their minimum level no filter runs).
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Worker.Lifecycle;

internal static class WarmUpLogFilter
{
    /// <summary>Wraps every rule of <paramref name="options"/> (a PostConfigure, after the app's own configuration).</summary>
    public static void Apply(LoggerFilterOptions options)
    {
        var rules = options.Rules.ToList();
        options.Rules.Clear();
        foreach (var rule in rules)
        {
            options.Rules.Add(new LoggerFilterRule(rule.ProviderName, rule.CategoryName, rule.LogLevel, Wrap(rule.Filter)));
        }

        options.Rules.Add(new LoggerFilterRule(providerName: null, categoryName: null, options.MinLevel, Wrap(filter: null)));
    }

    private static Func<string?, string?, LogLevel, bool> Wrap(Func<string?, string?, LogLevel, bool>? filter) =>
        (provider, category, level) =>
            ((level >= LogLevel.Warning && !WorkerWarmUp.Probing) || !WorkerWarmUp.InProgress)
            && (filter?.Invoke(provider, category, level) ?? true);
}
