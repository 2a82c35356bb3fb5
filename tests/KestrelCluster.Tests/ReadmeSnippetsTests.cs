// Every C# block of the README compiles: each one appears, as the README shows it (indentation aside), in the
// ReadmeSnippets project, which the solution builds. A block edited in one place and not the other fails here.
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed partial class ReadmeSnippetsTests
{
    [Fact]
    public void EveryCSharpBlockOfTheReadme_IsInTheCompiledSnippetsProject()
    {
        var repository = DotnetCli.RepositoryRoot;
        var readme = File.ReadAllText(Path.Combine(repository, "README.md"));
        var snippets = Path.Combine(repository, "tests", "KestrelCluster.ReadmeSnippets");
        var compiled = Directory.GetFiles(snippets, "*.cs").Select(f => Normalize(File.ReadAllText(f))).ToList();

        var blocks = CSharpBlock().Matches(readme).Select(m => m.Groups[1].Value).ToList();
        Assert.True(blocks.Count >= 10, $"only {blocks.Count} C# blocks found in the README");
        Assert.All(blocks, block => Assert.True(compiled.Any(c => c.Contains(Normalize(block), StringComparison.Ordinal)),
            $"This README block is not in {snippets} (as it is, indentation aside):\n{block}"));
    }

    /// <summary>Without each line's leading whitespace, and with \n line ends.</summary>
    private static string Normalize(string text) =>
        string.Join('\n', text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').Select(l => l.Trim())).Trim();

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();
}
