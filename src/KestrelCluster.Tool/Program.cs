// kestrel-cluster: see and steer a running KestrelCluster app through its primary's admin socket.
//   kestrel-cluster status [PID] [--json]   the cluster as a table (or the status JSON)
//   kestrel-cluster restart [PID]            rolling restart, as kill -HUP; returns when done
//   kestrel-cluster scale N [PID]            set the number of workers; returns when done
//   kestrel-cluster upgrade [PID]            primary upgrade, as kill -USR2; returns when the new primary took over
//   kestrel-cluster stop [PID]               graceful stop, as kill -TERM
//   kestrel-cluster ps                       the running primaries of this user
// Exit codes: 0 done, 1 the primary refused or could not be reached, 2 wrong usage.
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using KestrelCluster.Tool;

const string Usage = """
    Usage: kestrel-cluster <command> [PID]
      status [PID] [--json]   the cluster as a table, or its status JSON
      restart [PID]           rolling restart of every worker (as kill -HUP); waits until done
      scale N [PID]           run N workers; waits until they are ready (or drained)
      upgrade [PID]           start a new primary from the deployed app and hand it the sockets (as kill -USR2);
                              waits until it has taken over (or failed: the running primary serves on)
      stop [PID]              stop gracefully (as kill -TERM)
      ps                      list the running KestrelCluster primaries of this user
    PID is the primary's pid; with one primary running it may be left out.
    """;

var json = args.Contains("--json");
var rest = args.Where(a => a != "--json").ToArray();
if (rest is [] || rest[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(Usage);
    return rest is [] ? 2 : 0;
}

if (rest[0] == "ps")
{
    foreach (var (pid, socket) in PrimaryLocator.FindAll())
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{pid,8}  {socket}"));
    }

    return 0;
}

string command;
int? processId;
try
{
    (command, processId) = rest switch
    {
        ["status" or "restart" or "upgrade" or "stop"] => (rest[0], (int?)null),
        ["status" or "restart" or "upgrade" or "stop", var pid] => (rest[0], ParsePid(pid)),
        ["scale", var n] => ($"scale {ParseCount(n)}", null),
        ["scale", var n, var pid] => ($"scale {ParseCount(n)}", ParsePid(pid)),
        _ => throw new FormatException($"Unknown command line: {string.Join(' ', args)}."),
    };
}
catch (FormatException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(Usage);
    return 2;
}

var (socketPath, error) = PrimaryLocator.Find(processId);
if (socketPath is null)
{
    Console.Error.WriteLine(error);
    return 1;
}

string reply;
try
{
    reply = await AdminClient.SendAsync(socketPath, command, CancellationToken.None);
}
catch (SocketException e)
{
    Console.Error.WriteLine($"Cannot reach the primary at {socketPath}: {e.SocketErrorCode}. Is it still running (as this user)?");
    return 1;
}

using var document = JsonDocument.Parse(reply);
if (command == "status")
{
    Console.WriteLine(json ? reply : StatusTable.Format(document.RootElement, DateTimeOffset.UtcNow));
    return 0;
}

var ok = document.RootElement.GetProperty("ok").GetBoolean();
if (json)
{
    Console.WriteLine(reply);
}
else
{
    (ok ? Console.Out : Console.Error).WriteLine(document.RootElement.GetProperty(ok ? "message" : "error").GetString());
}

return ok ? 0 : 1;

static int ParsePid(string text) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0
    ? pid
    : throw new FormatException($"'{text}' is not a process id.");

static int ParseCount(string text) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
    ? n
    : throw new FormatException($"'{text}' is not a worker count (1 or more).");
