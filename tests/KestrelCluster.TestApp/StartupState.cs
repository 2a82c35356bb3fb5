// The app's own work at startup, as hosted services do it: TestApp:StartupStateMb MiB built and kept (a cache, a model),
// and a line in TestApp:RecordFile for every process it starts in. The primary must not start it.
using System.Diagnostics.Metrics;

namespace KestrelCluster.TestApp;

internal sealed class StartupState(IClusterContext cluster, IConfiguration configuration) : IHostedService
{
    private static readonly List<byte[]> s_kept = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (configuration["TestApp:RecordFile"] is { Length: > 0 } path)
        {
            File.AppendAllText(path, $"app-service {cluster.Role} {Environment.ProcessId}\n");
        }

        for (var i = 0; i < configuration.GetValue("TestApp:StartupStateMb", 0); i++)
        {
            var block = new byte[1024 * 1024];
            Array.Fill(block, (byte)i); // touched: resident, not just reserved
            s_kept.Add(block);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Reads the KestrelCluster meter in-process, as an exporter in that process would (runs in every process).</summary>
internal sealed class MeterProbe(IClusterContext cluster, IConfiguration configuration) : IHostedService, IDisposable
{
    private readonly MeterListener _listener = new();
    private Timer? _timer;
    private int _recorded;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "KestrelCluster" && instrument.Name == "kestrelcluster.workers")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((_, value, _, _) =>
        {
            if (value > 0 && configuration["TestApp:RecordFile"] is { Length: > 0 } path && Interlocked.Exchange(ref _recorded, 1) == 0)
            {
                File.AppendAllText(path, $"meter {cluster.Role} {Environment.ProcessId} kestrelcluster.workers={value}\n");
            }
        });
        _listener.Start();
        _timer = new Timer(_ => _listener.RecordObservableInstruments(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(200));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _timer?.Dispose();
        _listener.Dispose();
    }
}
