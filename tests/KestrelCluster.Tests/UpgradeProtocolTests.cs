// The upgrade socket's frames and the new primary's environment contract (Protocol/UpgradeProtocol.cs): what two
// primaries of different builds must read alike, and what one of another version is told.
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests;

public sealed class UpgradeProtocolTests
{
    private static readonly byte[] s_secret = [.. Enumerable.Range(1, ControlFrames.SecretLength).Select(i => (byte)i)];

    [Fact]
    public void Hello_RoundTrip_KeepsTheVersionAndTheSecret()
    {
        var version = UpgradeProtocol.ReadHello(UpgradeProtocol.Hello(s_secret), out var secret);

        Assert.Equal(UpgradeProtocol.Version, version);
        Assert.Equal(s_secret, secret.ToArray());
    }

    [Fact]
    public void Hello_OfAnotherVersion_ReadsItsVersion_AndNoSecret()
    {
        var frame = UpgradeProtocol.Hello(s_secret);
        frame[1] = UpgradeProtocol.Version + 1;

        Assert.Equal(UpgradeProtocol.Version + 1, UpgradeProtocol.ReadHello(frame, out var secret));
        Assert.True(secret.IsEmpty);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { (byte)FrameType.Hello, 1, 0, 0, 0 })] // a worker's hello on the upgrade socket
    [InlineData(new byte[] { (byte)FrameType.UpgradeHello, 1, 0 })] // cut short
    public void Hello_Malformed_IsNone(byte[] frame) => Assert.Equal(-1, UpgradeProtocol.ReadHello(frame, out _));

    [Fact]
    public void Hello_OfThisVersion_WithAShortSecret_HasNoSecret()
    {
        Assert.Equal(UpgradeProtocol.Version, UpgradeProtocol.ReadHello(UpgradeProtocol.Hello(s_secret).AsSpan()[..^1], out var secret));
        Assert.True(secret.IsEmpty); // the old primary then refuses it: it is not the invitation's
    }

    [Fact]
    public void Refused_CarriesItsReason_CutAt1000Characters()
    {
        Assert.Equal("no", UpgradeProtocol.ReadRefused(UpgradeProtocol.Refused("no")));
        Assert.Equal(1000, UpgradeProtocol.ReadRefused(UpgradeProtocol.Refused(new string('x', 5000))).Length);
    }

    [Fact]
    public void Invitation_Environment_NamesTheSocketTheSecretTheOldPrimaryAndItsLastWorker()
    {
        var environment = new UpgradeInvitation("/run/kc/upgrade.sock", s_secret, 4242, 17).ToEnvironment();

        Assert.Equal("/run/kc/upgrade.sock", environment[UpgradeProtocol.SocketVariable]);
        Assert.Equal(Convert.ToBase64String(s_secret), environment[UpgradeProtocol.SecretVariable]);
        Assert.Equal("4242", environment[UpgradeProtocol.FromProcessIdVariable]);
        Assert.Equal("17", environment[UpgradeProtocol.LastWorkerIdVariable]);
    }
}
