// Starts worker processes from one dedicated, long-lived thread. Linux sends a child's parent-death signal
// (PR_SET_PDEATHSIG, which workers set) when the *thread* that forked it exits, not the process: forking
// from a thread-pool thread that later retires would kill healthy workers. This thread lives as long as the
// primary, so the signal means what it should: the primary is gone.
using System.Collections.Concurrent;
using System.Diagnostics;

namespace KestrelCluster.Primary.Launching;

internal sealed class WorkerSpawner : IDisposable
{
    private readonly BlockingCollection<(ProcessStartInfo StartInfo, TaskCompletionSource<Process> Result)> _requests = [];
    private readonly Thread _thread;

    public WorkerSpawner()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "KC spawner" };
        _thread.Start();
    }

    /// <summary>Starts the process on the spawner thread and returns it (or throws what Process.Start threw).</summary>
    public Process Start(ProcessStartInfo startInfo)
    {
        var result = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        _requests.Add((startInfo, result));
        return result.Task.GetAwaiter().GetResult();
    }

    public void Dispose() => _requests.CompleteAdding();

    private void Run()
    {
        foreach (var (startInfo, result) in _requests.GetConsumingEnumerable())
        {
            try
            {
                result.TrySetResult(Process.Start(startInfo) ?? throw new InvalidOperationException($"{startInfo.FileName} did not " +
                    $"start."));
            }
            catch (Exception e)
            {
                result.TrySetException(e);
            }
        }
    }
}
