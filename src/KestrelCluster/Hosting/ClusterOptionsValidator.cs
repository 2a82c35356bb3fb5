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
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.Workers)} is {options.Workers}; it must be 0 (no cluster) or a positive number of worker processes.");
        }

        if (options.WorkerStartTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.WorkerStartTimeout)} is {options.WorkerStartTimeout}; it must be a positive time span such as 00:01:00.");
        }

        if (options.MaxHandoffsInFlight is < 1 or > 100_000)
        {
            failures.Add($"{ClusterOptions.SectionName}:{nameof(ClusterOptions.MaxHandoffsInFlight)} is {options.MaxHandoffsInFlight}; it must be between 1 and 100000.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
