// Startup validation of ClusterOptions: every message names the configuration key and what it accepts.
using Microsoft.Extensions.Options;

namespace KestrelCluster.Hosting;

internal sealed class ClusterOptionsValidator : IValidateOptions<ClusterOptions>
{
    public ValidateOptionsResult Validate(string? name, ClusterOptions options)
    {
        var failures = new List<string>();
        if (options.Workers < 0)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.Workers)} is {options.Workers}; it must be 0 (no " +
                $"cluster) or a positive number of worker processes.");
        }
        else if (options.Workers > ClusterOptions.MaxWorkers)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.Workers)} is {options.Workers}; the limit is " +
                $"{ClusterOptions.MaxWorkers} worker processes (each is a whole .NET process; use about one per CPU).");
        }

        Positive(failures, nameof(ClusterOptions.WorkerStartTimeout), options.WorkerStartTimeout);
        if (options.WarmUpPath is { } path && (!path.StartsWith('/') || path.StartsWith("//", StringComparison.Ordinal)
            || !Uri.IsWellFormedUriString(path, UriKind.Relative)))
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.WarmUpPath)} is '{path}'; it must be a path on this " +
                $"app, such as /healthz.");
        }

        Positive(failures, nameof(ClusterOptions.MaxWarmUpTime), options.MaxWarmUpTime);
        if (options.WarmUpPath is not null && options.MaxWarmUpTime >= options.WorkerStartTimeout)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.MaxWarmUpTime)} ({options.MaxWarmUpTime}) must be " +
                $"shorter than {ClusterOptions.SectionName}:{nameof(ClusterOptions.WorkerStartTimeout)} ({options.WorkerStartTimeout}).");
        }

        if (options.AcceptThreads is < 1 or > ClusterOptions.MaxAcceptThreads)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.AcceptThreads)} is {options.AcceptThreads}; it must be " +
                $"between 1 and {ClusterOptions.MaxAcceptThreads}.");
        }

        if (options.MaxHandoffsInFlight is < 1 or > 100_000)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.MaxHandoffsInFlight)} is " +
                $"{options.MaxHandoffsInFlight}; it must be between 1 and 100000.");
        }

        Positive(failures, nameof(ClusterOptions.HeartbeatInterval), options.HeartbeatInterval);
        Positive(failures, nameof(ClusterOptions.WorkerTimeout), options.WorkerTimeout);
        Positive(failures, nameof(ClusterOptions.WorkerStopTimeout), options.WorkerStopTimeout);
        Positive(failures, nameof(ClusterOptions.CrashLoopWindow), options.CrashLoopWindow);
        Positive(failures, nameof(ClusterOptions.PrimaryUpgradeTimeout), options.PrimaryUpgradeTimeout);
        Positive(failures, nameof(ClusterOptions.MaxConnectionWait), options.MaxConnectionWait);
        if (options.MinWorkerUptime < TimeSpan.Zero)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.MinWorkerUptime)} is {options.MinWorkerUptime}; it " +
                $"must be 0 or a positive time span such as 00:00:01.");
        }

        if (options.WorkerTimeout > TimeSpan.Zero && options.WorkerTimeout <= options.HeartbeatInterval)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.WorkerTimeout)} ({options.WorkerTimeout}) must be " +
                $"longer than {ClusterOptions.SectionName}:{nameof(ClusterOptions.HeartbeatInterval)} ({options.HeartbeatInterval}).");
        }

        if (options.CrashLoopRestarts < 1)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.CrashLoopRestarts)} is {options.CrashLoopRestarts}; " +
                $"it must be 1 or more.");
        }

        NotNegative(failures, nameof(ClusterOptions.MaxRequestsPerWorker), options.MaxRequestsPerWorker, "0 turns recycling off");
        NotNegative(failures, nameof(ClusterOptions.MaxRequestsJitter), options.MaxRequestsJitter, "0 means no jitter");
        NotNegative(failures, nameof(ClusterOptions.MaxWorkerMemory), options.MaxWorkerMemory, "a number of bytes; 0 turns it off");

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Positive(List<string> failures, string name, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            failures.Add($"{ClusterOptions.SectionName}:{name} is {value}; it must be a positive time span such as 00:00:30.");
        }
    }

    private static void NotNegative(List<string> failures, string name, long value, string meaning)
    {
        if (value < 0)
        {
            failures.Add($"{ClusterOptions.SectionName}:{name} is {value}; it must be 0 or more ({meaning}).");
        }
    }
}
