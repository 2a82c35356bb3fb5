using KestrelCluster.Testing;
using Microsoft.AspNetCore.TestHost;

public sealed class FakeGreeterFactory : ClusterWebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("Greeting:Punctuation", "!");
        builder.ConfigureTestServices(services => services.AddSingleton<IGreeter, FakeGreeter>());
    }
}

// What the README's factory replaces (in the README, the app's own service and the test's fake).
public interface IGreeter
{
    string Greet();
}

internal sealed class FakeGreeter : IGreeter
{
    public string Greet() => "fake";
}
