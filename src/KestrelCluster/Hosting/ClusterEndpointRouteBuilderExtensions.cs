// MapClusterStatus: the whole cluster in one GET, as the primary sees it.
using System.Diagnostics.CodeAnalysis;
using KestrelCluster.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Microsoft.AspNetCore.Builder;

/// <summary><see cref="IEndpointRouteBuilder"/> extension methods for the KestrelCluster status endpoint.</summary>
public static class ClusterEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps a GET endpoint that returns the status of the whole cluster as JSON: the primary (pid, state, endpoints,
    /// connections accepted and waiting, rolling-restart generation) and every worker (pid, state, restarts, last exit
    /// and why, connections, requests per second, CPU, memory, GC heap, thread-pool queue, heartbeat lag). Whichever
    /// worker serves the request asks the primary, so every call sees the same cluster. It is an ordinary endpoint:
    /// protect it as any other (<c>RequireAuthorization</c>, <c>RequireHost</c>).
    /// </summary>
    /// <param name="endpoints">The <see cref="IEndpointRouteBuilder"/>.</param>
    /// <param name="pattern">The route pattern; <c>/cluster/status</c> by default.</param>
    /// <returns>An <see cref="IEndpointConventionBuilder"/> to add conventions (authorization, host) to the endpoint.</returns>
    public static IEndpointConventionBuilder MapClusterStatus(this IEndpointRouteBuilder endpoints,
        [StringSyntax("Route")] string pattern = "/cluster/status")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(pattern);
        ClusterStatusSource.EnsureClusterTransport(endpoints.ServiceProvider, nameof(MapClusterStatus));
        return endpoints.MapGet(pattern, WriteStatusAsync).WithDisplayName("KestrelCluster status");
    }

    private static async Task WriteStatusAsync(HttpContext http)
    {
        byte[] json;
        try
        {
            json = await ClusterStatusSource.GetAsync(http.RequestServices, http.RequestAborted).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            // The primary did not answer (gone, or stopping): say so, as a problem the caller can read.
            await Results.Problem(title: "The cluster status is unavailable.", detail: e.Message,
                statusCode: StatusCodes.Status503ServiceUnavailable).ExecuteAsync(http).ConfigureAwait(false);
            return;
        }

        http.Response.ContentType = "application/json; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        await http.Response.Body.WriteAsync(json, http.RequestAborted).ConfigureAwait(false);
    }
}
