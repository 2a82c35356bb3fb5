// The pieces of resource-exhaustion handling that are decisions, not processes: the primary's fd budget, the startup
// check of the open-files limit, which failed starts are retried, and which waiting clients get the primary's 503.
using System.ComponentModel;
using System.Text;
using KestrelCluster.Interop;
using KestrelCluster.Primary.Connections;
using KestrelCluster.Primary.Launching;
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Primary.Operations;

namespace KestrelCluster.Tests;

public sealed class ResourceLimitsUnitTests
{
    [Fact]
    public void FdBudget_IsTheLimitLessWhatElseIsOpenAndTheReserve_AndAcceptStopsThere()
    {
        var open = Libc.CountOpenDescriptors();
        var budget = new ConnectionFdBudget(open + 200, reserve: 100);

        Assert.InRange(budget.Budget, 100 - 20, 100 + 20); // this test host opens and closes fds of its own meanwhile
        for (var i = 0; i < budget.Budget; i++)
        {
            Assert.True(budget.HasRoom);
            budget.OnOpened();
        }

        Assert.False(budget.HasRoom);
        budget.OnClosed();
        Assert.True(budget.HasRoom);
    }

    [Fact]
    public void FdBudget_NeverBelowTheMinimum_EvenWhenTheLimitIsExhausted()
    {
        var budget = new ConnectionFdBudget(limit: 10, reserve: 64);

        Assert.Equal(ConnectionFdBudget.MinBudget, budget.Budget);
    }

    [Fact]
    public async Task FdBudget_WaitForRoom_ReturnsWhenAConnectionCloses()
    {
        var budget = new ConnectionFdBudget(limit: 10, reserve: 64);
        for (var i = 0; i < budget.Budget; i++)
        {
            budget.OnOpened();
        }

        var waiter = Task.Run(() => budget.WaitForRoom(TimeSpan.FromSeconds(30)));
        budget.OnClosed();

        await waiter.WaitAsync(TimeSpan.FromSeconds(20)); // woken by the close, long before its own 30 s
        Assert.True(budget.HasRoom);
    }

    [Theory]
    [InlineData(400, 127, 212, 2, 64, null, "fewer than 2 workers × Cluster:MaxHandoffsInFlight (64) in flight")]
    [InlineData(1024, 700, 220, 2, 64, null, "each worker about 740 open connections (Kestrel's MaxConcurrentConnections is not set)")]
    [InlineData(65536, 65000, 220, 2, 64, 100_000L, "Kestrel's MaxConcurrentConnections is 100000")]
    public void OpenFilesCheck_WarnsWhenTheLimitFallsShort(long limit, int budget, int other, int workers, int inFlight, long? kestrel,
        string expected)
    {
        var shortfall = OpenFilesCheck.Shortfall(limit, budget, other, workers, inFlight, kestrel);

        Assert.NotNull(shortfall);
        Assert.Contains(expected, shortfall, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1_048_576, 1_048_000, 220, 2, 64, null)]
    [InlineData(65536, 65000, 220, 2, 64, 10_000L)]
    public void OpenFilesCheck_SaysNothingWhenTheLimitIsEnough(long limit, int budget, int other, int workers, int inFlight, long? kestrel) =>
        Assert.Null(OpenFilesCheck.Shortfall(limit, budget, other, workers, inFlight, kestrel));

    [Theory]
    [InlineData(Libc.EMFILE, true)]
    [InlineData(Libc.ENFILE, true)]
    [InlineData(Libc.EAGAIN, true)]
    [InlineData(Libc.ENOMEM, true)]
    [InlineData(2, false)] // ENOENT: the executable is gone
    [InlineData(13, false)] // EACCES
    public void WorkerStart_OnlyAResourceShortageIsRetriedForever(int errno, bool transient)
    {
        var failure = new WorkerStartException("Worker 3 (slot 0) could not be started.", new Win32Exception(errno));

        Assert.Equal(transient, failure.IsTransient);
        Assert.Contains($"(errno {errno})", failure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkerStart_RetryDelay_GrowsFrom100MsToAtMost5s()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(100), WorkerSlot.SpawnRetryDelay(1));
        Assert.Equal(TimeSpan.FromMilliseconds(400), WorkerSlot.SpawnRetryDelay(3));
        Assert.Equal(TimeSpan.FromSeconds(5), WorkerSlot.SpawnRetryDelay(100));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\n", true)]
    [InlineData("POST /echo HTTP/1.1\r\n", true)]
    [InlineData("OPTIONS * HTTP/1.1\r\n", true)]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false)] // HTTP/2's preface: an HTTP/1.1 answer would be garbage to it
    [InlineData("\u0016\u0003\u0001\u0002\u0000", false)] // a TLS ClientHello
    [InlineData("", false)] // nothing sent yet
    [InlineData("get / HTTP/1.1\r\n", false)]
    public void WaitedInVain_AnswersOnlyAPlainHttp1Request(string start, bool answered) =>
        Assert.Equal(answered, WaitedInVain.IsHttp1Request(Encoding.Latin1.GetBytes(start)));
}
