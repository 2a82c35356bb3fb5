// The fault lab's app: an ordinary ASP.NET Core app with the faults real apps have, each switched on by the lab.
//   GET /             "Hello, World!"; with FaultApp:LeakKb it also keeps that many KiB for good (a leak that grows
//                     with the traffic), with FaultApp:ChurnKb it allocates that many KiB of short-lived garbage and
//                     replaces a few objects of the live heap (so the old generation is collected too)
//   GET /poison       ends the process (Environment.FailFast), as a bug in native code or a stack overflow would
//   GET /block?ms=50  blocks its thread-pool thread on a timer (sync over async: Task.Delay(ms).Wait())
// FaultApp:LiveHeapMb builds a live heap of that many MiB (1 KiB objects) before the app serves — in each process that
// serves: a primary only supervises, so it builds nothing (IsClusterPrimary). `--plain` runs Kestrel alone.
using System.Collections.Concurrent;

var plain = args.Contains("--plain");
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = [.. args.Where(a => a != "--plain")],
    ContentRootPath = AppContext.BaseDirectory,
});
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddFilter("KestrelCluster", LogLevel.Information);
if (!plain)
{
    builder.WebHost.UseClusterTransport();
}

var leakKb = builder.Configuration.GetValue("FaultApp:LeakKb", 0);
var churnKb = builder.Configuration.GetValue("FaultApp:ChurnKb", 0);
var liveHeap = builder.IsClusterPrimary() ? [] : LiveHeap.Build(builder.Configuration.GetValue("FaultApp:LiveHeapMb", 0));
var leaked = new ConcurrentBag<byte[]>();

var app = builder.Build();
app.MapGet("/", () =>
{
    if (leakKb > 0)
    {
        var buffer = new byte[leakKb * 1024];
        for (var i = 0; i < buffer.Length; i += 4096)
        {
            buffer[i] = 1; // resident, as a real leak is
        }

        leaked.Add(buffer);
    }

    if (churnKb > 0)
    {
        LiveHeap.Churn(liveHeap, churnKb);
    }

    return "Hello, World!";
});
app.MapGet("/poison", () =>
{
    Environment.FailFast("The fault lab's poison request.");
    return "unreachable";
});
app.MapGet("/block", (int ms) =>
{
    Task.Delay(ms).Wait(); // the sync-over-async the lab is about: a thread-pool thread held for ms
    return "blocked";
});
app.Run();

internal static class LiveHeap
{
    private const int ObjectBytes = 1024;

    public static byte[][] Build(int megabytes)
    {
        var heap = new byte[megabytes * 1024][];
        for (var i = 0; i < heap.Length; i++)
        {
            heap[i] = new byte[ObjectBytes - 24]; // 1 KiB with the array's header
            heap[i][0] = 1;
        }

        return heap;
    }

    /// <summary>Short-lived garbage of <paramref name="kilobytes"/>, and 8 live objects replaced (old-generation garbage).</summary>
    public static void Churn(byte[][] heap, int kilobytes)
    {
        var sink = 0;
        for (var i = 0; i < kilobytes; i++)
        {
            var garbage = new byte[ObjectBytes - 24];
            garbage[i % garbage.Length] = 1;
            sink += garbage.Length;
        }

        for (var i = 0; heap.Length > 0 && i < 8; i++)
        {
            heap[Random.Shared.Next(heap.Length)] = new byte[ObjectBytes - 24];
        }

        GC.KeepAlive(sink);
    }
}
