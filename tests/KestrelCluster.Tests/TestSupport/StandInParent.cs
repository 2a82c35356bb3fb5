// A shell script standing in for the program that starts the app (`dotnet run`, systemd): what the primary checks of
// its parent is its name, so a script of that name, which starts the app and waits, is enough.
namespace KestrelCluster.Tests.TestSupport;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class StandInParent : IDisposable
{
    private readonly string _directory = System.IO.Directory.CreateTempSubdirectory("kc-parent-").FullName;

    /// <param name="name">The script's file name: the name the app sees for its parent.</param>
    /// <param name="shiftFirstArgument">Drop the first argument before running the rest (`dotnet run APP`: drop "run").</param>
    public StandInParent(string name, bool shiftFirstArgument = false)
    {
        ScriptPath = Path.Combine(_directory, name);
        File.WriteAllText(ScriptPath, $"#!/bin/sh\n{(shiftFirstArgument ? "shift\n" : "")}\"$@\" &\nwait\n");
        File.SetUnixFileMode(ScriptPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string ScriptPath { get; }

    /// <summary>A folder of the stand-in's own, removed with it (for files the test puts beside it).</summary>
    public string Directory => _directory;

    public void Dispose() => System.IO.Directory.Delete(_directory, recursive: true);
}
