// The pages link each other and the repository's files: every relative link of the README, CONTRIBUTING.md, docs/,
// benchmarks/README.md and the rooms' READMEs under src/ reaches a file that exists, and every #anchor a heading of the
// page it names (GitHub's anchors).
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed partial class DocsLinksTests
{
    [Fact]
    public void EveryRelativeLinkAndAnchorOfThePages_Resolves()
    {
        var repository = DotnetCli.RepositoryRoot;
        var pages = Directory.GetFiles(Path.Combine(repository, "docs"), "*.md")
            .Concat(new[] { "README.md", "CONTRIBUTING.md", Path.Combine("benchmarks", "README.md") }.Select(p => Path.Combine(repository, p)))
            .Concat(RoomsTests.RoomReadmes())
            .ToList();
        var broken = new List<string>();
        var links = 0;
        foreach (var page in pages)
        {
            foreach (var target in LinksOf(File.ReadAllText(page)))
            {
                links++;
                var (path, fragment) = target.IndexOf('#', StringComparison.Ordinal) is var hash and >= 0
                    ? (target[..hash], target[(hash + 1)..])
                    : (target, null);
                var file = path.Length == 0 ? page : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(path)));
                if (!File.Exists(file) && !Directory.Exists(file))
                {
                    broken.Add($"{Path.GetRelativePath(repository, page)}: {target} (no such file)");
                }
                else if (fragment is not null && (!file.EndsWith(".md", StringComparison.Ordinal) || !AnchorsOf(File.ReadAllText(file)).Contains(fragment)))
                {
                    broken.Add($"{Path.GetRelativePath(repository, page)}: {target} (no such heading)");
                }
            }
        }

        Assert.True(links >= 20, $"only {links} relative links found");
        Assert.True(broken.Count == 0, "Broken links:\n" + string.Join('\n', broken));
    }

    /// <summary>The relative link targets of a Markdown page, outside code blocks and code spans.</summary>
    private static IEnumerable<string> LinksOf(string markdown)
    {
        var inCode = false;
        foreach (var line in markdown.Split('\n'))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inCode = !inCode;
                continue;
            }

            if (!inCode)
            {
                foreach (Match link in Link().Matches(CodeSpan().Replace(line, "")))
                {
                    var target = link.Groups[1].Value;
                    if (!Scheme().IsMatch(target))
                    {
                        yield return target;
                    }
                }
            }
        }
    }

    /// <summary>GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens.</summary>
    private static HashSet<string> AnchorsOf(string markdown)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var inCode = false;
        foreach (var line in markdown.Split('\n'))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inCode = !inCode;
            }
            else if (!inCode && Heading().Match(line) is { Success: true } heading)
            {
                anchors.Add(NotInAnchor().Replace(heading.Groups[1].Value.Trim().ToLowerInvariant(), "").Replace(' ', '-'));
            }
        }

        return anchors;
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex Link();

    [GeneratedRegex("`[^`]*`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex("^[a-z][a-z0-9+.-]*:", RegexOptions.IgnoreCase)]
    private static partial Regex Scheme();

    [GeneratedRegex(@"^#{1,6} (.+)$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"[^\p{L}\p{Nd}\- _]")]
    private static partial Regex NotInAnchor();
}
