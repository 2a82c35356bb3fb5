// The HTTP/2 rows: h2load against plain Kestrel and the cluster, over cleartext (prior knowledge) and over TLS (ALPN h2),
// warm. Each setup is started once and warmed with 80,000 requests, then measured in interleaved rounds, as the warm
// mode does for HTTP/1.1. A self-signed certificate made here serves the TLS setups (h2load does not verify it).
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace KestrelCluster.Benchmarks;

internal sealed record H2Result(double RequestsPerSecond, long Succeeded, long Failed);

internal static partial class H2Mode
{
    private const string Password = "kestrelcluster-bench";

    public static async Task<string> RunAsync(HarnessOptions options, string benchApp)
    {
        var certificate = Path.Combine(Path.GetTempPath(), $"kc-bench-{Environment.ProcessId}.pfx");
        await File.WriteAllBytesAsync(certificate, SelfSigned());
        try
        {
            var setups = Setups(benchApp, certificate).ToList();
            var (warmUp, measured) = options.Smoke ? (2_000, 2_000) : (80_000, 50_000);
            var results = setups.ToDictionary(s => s.Name, _ => new List<(H2Result Result, double Cpu)>());
            var servers = new Dictionary<string, Server>();
            try
            {
                foreach (var setup in setups)
                {
                    var server = servers[setup.Name] = await Server.StartAsync(setup);
                    await RunH2LoadAsync(server.Url, warmUp);
                    Console.WriteLine($"started and warmed up: {setup.Name}");
                }

                for (var round = 1; round <= options.Rounds; round++)
                {
                    foreach (var setup in setups)
                    {
                        var server = servers[setup.Name];
                        var before = server.TreeCpuSeconds();
                        var result = await RunH2LoadAsync(server.Url, measured);
                        var cpu = (server.TreeCpuSeconds() - before) / Math.Max(1, result.Succeeded) * 1e6;
                        results[setup.Name].Add((result, cpu));
                        Console.WriteLine($"h2 round {round} {setup.Name,-16} {result.RequestsPerSecond,10:N0} req/s {cpu,5:0.0} µs CPU/req   failed {result.Failed}");
                    }
                }
            }
            finally
            {
                foreach (var server in servers.Values)
                {
                    await server.DisposeAsync();
                }
            }

            var text = new StringBuilder();
            text.AppendLine(CultureInfo.InvariantCulture, $"Mode: **HTTP/2, warm** (h2load -c16 -m10, {measured:N0} requests per run after {warmUp:N0}, " +
                $"{options.Rounds} interleaved rounds, medians; × plain is against plain Kestrel over the same protocol).");
            text.AppendLine();
            text.AppendLine("| Setup | req/s | × plain | CPU µs / req | × plain | failed |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var setup in setups)
            {
                var runs = results[setup.Name];
                var plain = results[setup.Name.Replace("cluster-2", "plain", StringComparison.Ordinal)];
                double Median(List<(H2Result Result, double Cpu)> list, Func<(H2Result Result, double Cpu), double> figure) => Stats.Median(list.Select(figure));
                var rps = Median(runs, r => r.Result.RequestsPerSecond);
                var cpu = Median(runs, r => r.Cpu);
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {setup.Description} | {rps:N0} | {rps / Median(plain, r => r.Result.RequestsPerSecond):0.00} | {cpu:0.0} | {cpu / Median(plain, r => r.Cpu):0.00} | {runs.Sum(r => r.Result.Failed)} |");
            }

            return text.ToString();
        }
        finally
        {
            File.Delete(certificate);
        }
    }

    private static IEnumerable<Setup> Setups(string benchApp, string certificate)
    {
        (string, string[]) Bench(int port, string scheme, params string[] extra) => ("dotnet", [benchApp,
            $"--Kestrel:Endpoints:Bench:Url={scheme}://127.0.0.1:{port}", "--Kestrel:Endpoints:Bench:Protocols=Http2",
            $"--Kestrel:Certificates:Default:Path={certificate}", $"--Kestrel:Certificates:Default:Password={Password}", .. extra]);

        yield return new Setup("plain-h2c", "plain Kestrel, h2c (prior knowledge)", port => Bench(port, "http", "--plain"), 0);
        yield return new Setup("cluster-2-h2c", "KestrelCluster, 2 workers, h2c (prior knowledge)", port => Bench(port, "http", "--Cluster:Workers=2"), 2);
        yield return new Setup("plain-h2tls", "plain Kestrel, HTTP/2 over TLS (ALPN)", port => Bench(port, "https", "--plain"), 0) { Scheme = "https" };
        yield return new Setup("cluster-2-h2tls", "KestrelCluster, 2 workers, HTTP/2 over TLS (ALPN)", port => Bench(port, "https", "--Cluster:Workers=2"), 2)
        {
            Scheme = "https",
        };
    }

    private static async Task<H2Result> RunH2LoadAsync(string url, int requests)
    {
        var startInfo = new ProcessStartInfo("h2load") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-n", requests.ToString(CultureInfo.InvariantCulture), "-c", "16", "-m", "10", url })
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var finished = Finished().Match(output);
        var counts = Counts().Match(output);
        if (process.ExitCode != 0 || !finished.Success || !counts.Success)
        {
            throw new InvalidOperationException($"h2load failed: {output}{await process.StandardError.ReadToEndAsync()}");
        }

        return new H2Result(double.Parse(finished.Groups[1].Value, CultureInfo.InvariantCulture),
            long.Parse(counts.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(counts.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, as a password-protected PKCS#12 file.</summary>
    private static byte[] SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        return certificate.Export(X509ContentType.Pkcs12, Password);
    }

    [GeneratedRegex(@"finished in [\d.]+m?s, ([\d.]+) req/s")]
    private static partial Regex Finished();

    [GeneratedRegex(@"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")]
    private static partial Regex Counts();
}
