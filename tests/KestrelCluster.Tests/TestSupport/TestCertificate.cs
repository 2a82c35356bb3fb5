// A self-signed certificate for 127.0.0.1/localhost, written to a temporary PFX that workers can load too.
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace KestrelCluster.Tests.TestSupport;

internal sealed class TestCertificate : IDisposable
{
    public const string Password = "kestrelcluster-tests";

    public TestCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"kestrelcluster-test-{Guid.NewGuid():N}.pfx");
        File.WriteAllBytes(Path, certificate.Export(X509ContentType.Pfx, Password));
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
