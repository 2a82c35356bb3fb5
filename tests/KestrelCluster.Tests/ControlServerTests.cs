// The primary's check of a worker's hello secret: equal only when every byte is.
using KestrelCluster.Primary.Supervision;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests;

public sealed class ControlServerTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(ControlFrames.SecretLength - 1)]
    public void SecretsEqual_OneByteDifferent_IsFalse(int index)
    {
        var expected = Enumerable.Range(1, ControlFrames.SecretLength).Select(i => (byte)i).ToArray();
        var actual = expected.ToArray();
        Assert.True(ControlServer.SecretsEqual(expected, actual));

        actual[index] ^= 0x80;

        Assert.False(ControlServer.SecretsEqual(expected, actual));
    }

    [Fact]
    public void SecretsEqual_DifferentLengths_IsFalse()
    {
        var expected = new byte[ControlFrames.SecretLength];

        Assert.False(ControlServer.SecretsEqual(expected, expected.AsSpan(1)));
        Assert.False(ControlServer.SecretsEqual(expected, []));
    }
}
