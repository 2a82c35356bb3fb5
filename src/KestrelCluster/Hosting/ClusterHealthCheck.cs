// The cluster health check: from the primary's view, whichever process runs it. Healthy when every slot has a
// ready worker, Degraded when some do not, Unhealthy below the minimum or while the cluster stops (so a readiness
// probe takes the instance out of rotation before the drain) or when the primary does not answer.
using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KestrelCluster.Hosting;

internal sealed class ClusterHealthCheck(IServiceProvider services, int minimumReadyWorkers) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        byte[] status;
        try
        {
            status = await ClusterStatusSource.GetAsync(services, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, "The cluster primary did not answer.", e);
        }

        using var document = JsonDocument.Parse(status);
        return Evaluate(document.RootElement, minimumReadyWorkers, context.Registration.FailureStatus);
    }

    /// <summary>The verdict on a status (ClusterStatusReport's JSON).</summary>
    internal static HealthCheckResult Evaluate(JsonElement status, int minimumReadyWorkers, HealthStatus failureStatus)
    {
        var primary = status.GetProperty("primary");
        var state = primary.GetProperty("state").GetString();
        var workers = primary.GetProperty("workerCount").GetInt32();
        if (primary.GetProperty("mode").GetString() == "standalone")
        {
            return HealthCheckResult.Healthy("Not clustered: this process serves on its own.");
        }

        var ready = primary.GetProperty("readySlots").GetInt32();
        var data = new Dictionary<string, object>
        {
            ["readyWorkers"] = ready,
            ["workers"] = workers,
            ["state"] = state ?? "",
        };

        if (state == "stopping")
        {
            return new HealthCheckResult(failureStatus, "The cluster is stopping.", data: data);
        }

        if (ready < minimumReadyWorkers)
        {
            return new HealthCheckResult(failureStatus,
                $"{ready} of {workers} workers ready; at least {minimumReadyWorkers} needed.", data: data);
        }

        return ready < workers
            ? HealthCheckResult.Degraded($"{ready} of {workers} workers ready.", data: data)
            : HealthCheckResult.Healthy($"{ready} of {workers} workers ready.", data);
    }
}
