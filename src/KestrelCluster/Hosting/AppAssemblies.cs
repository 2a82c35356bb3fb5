// Which assemblies are "the app's own": the entry assembly (where Program.cs is) and the projects it references, as its
// deps.json lists them ("type": "project") — not the framework, not NuGet packages, not KestrelCluster. The primary
// does not start hosted services defined there (see PrimaryHostedServices).
using System.Reflection;
using System.Text.Json;

namespace KestrelCluster.Hosting;

internal static class AppAssemblies
{
    private static readonly Lazy<HashSet<string>> s_names = new(Find);

    /// <summary>Whether <paramref name="type"/> is defined in one of the app's own assemblies.</summary>
    public static bool Contains(Type type) => s_names.Value.Contains(type.Assembly.GetName().Name ?? "");

    /// <summary>The names of the app's own assemblies.</summary>
    internal static HashSet<string> Names => s_names.Value;

    private static HashSet<string> Find()
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (Assembly.GetEntryAssembly()?.GetName().Name is { } entry)
        {
            names.Add(entry);
        }

        // The app's own deps.json comes first in the list (then the frameworks'); none under native AOT.
        if (AppContext.GetData("APP_CONTEXT_DEPS_FILES") is string files && files.Split(';')[0] is { Length: > 0 } deps
            && File.Exists(deps))
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllBytes(deps));
                if (document.RootElement.TryGetProperty("libraries", out var libraries))
                {
                    foreach (var library in libraries.EnumerateObject())
                    {
                        if (library.Value.TryGetProperty("type", out var type) && type.ValueEquals("project"))
                        {
                            names.Add(library.Name.Split('/')[0]);
                        }
                    }
                }
            }
            catch (JsonException)
            {
                // An unreadable deps.json: the entry assembly alone is the app.
            }
        }

        // A project reference to KestrelCluster (this repository's samples) is still the library, not the app.
        names.Remove(typeof(ClusterOptions).Assembly.GetName().Name!);
        names.Remove("KestrelCluster.Testing");
        return names;
    }
}
