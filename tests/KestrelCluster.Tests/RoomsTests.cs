// The rooms of the library, checked over its source: a folder is a room whose namespace is its path; its README.md links
// the architecture page, names every file of the room, and says why when the room passes 15 files; no source file passes
// 300 lines unless its opening comment says why. A newcomer who opens a folder finds its map there, and the map cannot rot.
using System.Text.RegularExpressions;
using KestrelCluster.Tests.TestSupport;

namespace KestrelCluster.Tests;

public sealed partial class RoomsTests
{
    private const int MaxFilesPerRoom = 15;
    private const int MaxLinesPerFile = 300;

    private static string Library => Path.Combine(DotnetCli.RepositoryRoot, "src", "KestrelCluster");

    /// <summary>Every folder of the library that holds code, directly or below it.</summary>
    private static IEnumerable<string> Rooms() =>
        new[] { Library }.Concat(Directory.GetDirectories(Library, "*", SearchOption.AllDirectories))
            .Where(d => !IsBuildOutput(d) && Directory.EnumerateFiles(d, "*.cs", SearchOption.AllDirectories).Any(f => !IsBuildOutput(f)))
            .Order(StringComparer.Ordinal);

    /// <summary>The rooms' READMEs, for the links test.</summary>
    public static IEnumerable<string> RoomReadmes() => Rooms().Select(r => Path.Combine(r, "README.md")).Where(File.Exists);

    [Fact]
    public void EveryRoom_HasAReadmeThatLinksTheArchitectureAndNamesEachOfItsFiles()
    {
        var problems = new List<string>();
        var rooms = Rooms().ToList();
        Assert.True(rooms.Count >= 12, $"only {rooms.Count} rooms found under {Library}");
        foreach (var room in rooms)
        {
            var name = Path.GetRelativePath(DotnetCli.RepositoryRoot, room);
            var readme = Path.Combine(room, "README.md");
            if (!File.Exists(readme))
            {
                problems.Add($"{name}: no README.md");
                continue;
            }

            var text = File.ReadAllText(readme);
            if (!text.Contains("docs/architecture.md", StringComparison.Ordinal))
            {
                problems.Add($"{name}/README.md: no link to docs/architecture.md");
            }

            var files = Directory.GetFiles(room, "*.cs").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            problems.AddRange(files.Where(f => !text.Contains($"`{f}`", StringComparison.Ordinal))
                .Select(f => $"{name}/README.md: does not name `{f}`"));
            if (files.Count > MaxFilesPerRoom && !text.Contains("Why more than 15 files:", StringComparison.Ordinal))
            {
                problems.Add($"{name}: {files.Count} files, and its README does not say why more than 15 files");
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void EveryFile_IsInTheNamespaceOfItsFolder()
    {
        var wrong = new List<string>();
        foreach (var file in Directory.GetFiles(Library, "*.cs", SearchOption.AllDirectories).Where(f => !IsBuildOutput(f)))
        {
            var folder = Path.GetRelativePath(Library, Path.GetDirectoryName(file)!);
            var expected = folder == "." ? "KestrelCluster" : "KestrelCluster." + folder.Replace(Path.DirectorySeparatorChar, '.');
            var declared = Namespace().Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value).ToList();

            // The composition layer puts its extension methods where ASP.NET Core puts its own (Use*, Add*, Map*).
            var allowed = folder == "Hosting" ? declared.All(n => n == expected || n.StartsWith("Microsoft.", StringComparison.Ordinal)) : declared.All(n => n == expected);
            if (declared.Count == 0 || !allowed)
            {
                wrong.Add($"{Path.GetRelativePath(Library, file)}: namespace {string.Join(", ", declared)}, expected {expected}");
            }
        }

        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
    }

    [Fact]
    public void NoSourceFile_PassesThreeHundredLines_WithoutSayingWhy()
    {
        var source = Path.Combine(DotnetCli.RepositoryRoot, "src");
        var tooLong = Directory.GetFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(f))
            .Select(f => (File: f, Lines: File.ReadAllLines(f)))
            .Where(f => f.Lines.Length > MaxLinesPerFile
                && !f.Lines.TakeWhile(l => l.StartsWith("//", StringComparison.Ordinal)).Any(l => l.Contains("300 lines", StringComparison.Ordinal)))
            .Select(f => $"{Path.GetRelativePath(source, f.File)}: {f.Lines.Length} lines")
            .ToList();

        Assert.True(tooLong.Count == 0, "Over 300 lines, with no reason in the opening comment:\n" + string.Join('\n', tooLong));
    }

    private static bool IsBuildOutput(string path) =>
        path.Contains($"{Path.DirectorySeparatorChar}obj", StringComparison.Ordinal) || path.Contains($"{Path.DirectorySeparatorChar}bin", StringComparison.Ordinal);

    [GeneratedRegex(@"^namespace ([\w.]+);", RegexOptions.Multiline)]
    private static partial Regex Namespace();
}
