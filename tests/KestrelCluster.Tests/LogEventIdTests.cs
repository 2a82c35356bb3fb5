// Every log line of the library has its own event id and name: each room logs through its own class (ConnectionLog,
// SupervisionLog, WorkerLog, …) over shared ranges (the primary 1-99, workers 100-199, the tool 200-), so a collision
// would only show when someone filters on an id and gets two different lines.
using System.Reflection;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Tests;

public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLogMessage_HasAnEventIdAndNameOfItsOwn()
    {
        var messages = typeof(ClusterOptions).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is not null)
            .Select(m => (Name: $"{m.Method.DeclaringType!.Name}.{m.Method.Name}", m.Attribute!.EventId, m.Attribute.EventName))
            .ToList();

        Assert.True(messages.Count >= 80, $"only {messages.Count} log messages found");
        var sharedIds = messages.GroupBy(m => m.EventId).Where(g => g.Count() > 1)
            .Select(g => $"event id {g.Key}: {string.Join(", ", g.Select(m => m.Name))}");
        var sharedNames = messages.GroupBy(m => m.EventName ?? m.Name).Where(g => g.Count() > 1)
            .Select(g => $"event name {g.Key}: {string.Join(", ", g.Select(m => m.Name))}");
        var problems = sharedIds.Concat(sharedNames).ToList();
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }
}
