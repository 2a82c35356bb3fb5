// Every C# block of the README and of the docs/ pages compiles: each one appears, as the page shows it (indentation
// aside), in the ReadmeSnippets project, which the solution builds. A block edited in one place and not the other fails here.
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed partial class ReadmeSnippetsTests
{
    [Fact]
    public void EveryCSharpBlockOfTheReadmeAndTheDocs_IsInTheCompiledSnippetsProject()
    {
        var repository = DotnetCli.RepositoryRoot;
        var snippets = Path.Combine(repository, "tests", "KestrelCluster.ReadmeSnippets");
        var compiled = Directory.GetFiles(snippets, "*.cs").Select(f => Normalize(File.ReadAllText(f))).ToList();

        var pages = Directory.GetFiles(Path.Combine(repository, "docs"), "*.md").Prepend(Path.Combine(repository, "README.md")).ToList();
        var blocks = pages.SelectMany(page => CSharpBlock().Matches(File.ReadAllText(page)).Select(m => (Page: page, Code: m.Groups[1].Value)))
            .ToList();
        Assert.True(blocks.Count >= 10, $"only {blocks.Count} C# blocks found in the README and docs/");
        Assert.All(blocks, block => Assert.True(compiled.Any(c => c.Contains(Normalize(block.Code), StringComparison.Ordinal)),
            $"This block of {Path.GetRelativePath(repository, block.Page)} is not in {snippets} (as it is, indentation aside):\n{block.Code}"));
    }

    /// <summary>Without each line's leading whitespace, and with \n line ends.</summary>
    private static string Normalize(string text) =>
        string.Join('\n', text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').Select(l => l.Trim())).Trim();

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();
}
