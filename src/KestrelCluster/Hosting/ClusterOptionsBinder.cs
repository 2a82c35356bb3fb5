// Binding the "Cluster" section strictly: an unknown key (a typo) or a value of the wrong kind fails startup
// with a message naming the key and, for choices, the allowed values. The Bind call below is compiled by the
// configuration binding source generator (EnableConfigurationBindingGenerator in the csproj): no reflection, and no
// System.ComponentModel.TypeConverter loaded into every primary and worker for three TimeSpans and an enum.
using KestrelCluster.Scheduling;
using Microsoft.Extensions.Configuration;

namespace KestrelCluster.Hosting;

internal static class ClusterOptionsBinder
{
    public static void Bind(IConfigurationSection section, ClusterOptions options)
    {
        if (section[nameof(ClusterOptions.Scheduling)] is { } scheduling
            && (!Enum.TryParse<SchedulingPolicy>(scheduling, ignoreCase: true,
                out var policy) || !Enum.IsDefined(policy) || int.TryParse(scheduling, out _)))
        {
            throw new InvalidOperationException(
                $"{section.Path}:{nameof(ClusterOptions.Scheduling)} is '{scheduling}'; allowed values: " +
                    $"{string.Join(", ", Enum.GetNames<SchedulingPolicy>())}.");
        }

        try
        {
            section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"The '{section.Path}' configuration section is invalid: {e.Message}", e);
        }
    }

    public static IConnectionScheduler CreateScheduler(SchedulingPolicy policy) => policy switch
    {
        SchedulingPolicy.LeastConnections => new LeastConnectionsScheduler(),
        SchedulingPolicy.ClientIpHash => new ClientIpHashScheduler(),
        _ => new RoundRobinScheduler(), // Shared: the primary schedules nothing; ReusePort: what the primary accepts itself
    };
}
