// The library's layers and rooms, checked over the built assembly: Hosting → Primary / Worker → Messaging / Scheduling →
// the public contracts → Protocol → Interop, nothing upward and nothing sideways between siblings. Inside the primary and
// the worker, the rooms (sub-namespaces, one per folder) are ordered too: the primary's connection path and launching
// use nothing of supervision, supervision nothing of operations, operations nothing of the upgrade, and only the root
// (ClusterSupervisor, the listener factory) composes them all. Every type, field, signature and method body (each
// member its IL names) is read; a reference that breaks the order fails the test by name. docs/architecture.md draws it.
using System.Reflection;
using System.Reflection.Emit;

namespace KestrelCluster.Tests;

public sealed class LayeringTests
{
    /// <summary>
    /// Namespace → its place: the layer; within a layer the side (siblings: different sides, which never reference each
    /// other); within a side the step (a room uses only rooms of lower steps, and rooms of one step are siblings).
    /// </summary>
    private static readonly Dictionary<string, Place> s_places = new(StringComparer.Ordinal)
    {
        ["KestrelCluster.Interop"] = new(0),
        ["KestrelCluster.Protocol"] = new(1),
        ["KestrelCluster"] = new(2), // the public contracts (options, interfaces, their small data types)
        ["KestrelCluster.Messaging"] = new(3, "Messaging"),
        ["KestrelCluster.Scheduling"] = new(3, "Scheduling"),
        ["KestrelCluster.Primary.Connections"] = new(4, "Primary", 0), // the hot path: accept, dispatch, the workers' channels
        ["KestrelCluster.Primary.Launching"] = new(4, "Primary", 0), // a worker process: its command line, spawn, output
        ["KestrelCluster.Primary.Supervision"] = new(4, "Primary", 1), // the pool, slots, rotation, monitor, signals
        ["KestrelCluster.Primary.Operations"] = new(4, "Primary", 2), // status, admin socket, metrics, systemd
        ["KestrelCluster.Primary.Upgrade"] = new(4, "Primary", 3), // the primary's own upgrade, both sides
        ["KestrelCluster.Primary"] = new(4, "Primary", 4), // ClusterSupervisor and the listener factory: composes the rooms
        ["KestrelCluster.Worker.Connections"] = new(4, "Worker", 0), // the control channel and the handed-off sockets
        ["KestrelCluster.Worker.Lifecycle"] = new(4, "Worker", 1), // readiness, heartbeats, warm-up, the test-factory hook
        ["KestrelCluster.Hosting"] = new(Composition),
        ["Microsoft.AspNetCore.Hosting"] = new(Composition), // UseClusterTransport, where ASP.NET Core puts Use* extensions
        ["Microsoft.Extensions.DependencyInjection"] = new(Composition), // Add* extensions, likewise
        ["Microsoft.AspNetCore.Builder"] = new(Composition), // Map* extensions (MapClusterStatus), likewise
        ["Microsoft.Extensions.Hosting"] = new(Composition), // IsClusterPrimary on the host builder and the host, likewise
        ["Microsoft.Extensions.Configuration.Binder.SourceGeneration"] = new(Composition), // the binder generated for ClusterOptionsBinder
    };

    /// <summary>The composition layer: its namespaces (ours and the conventional ones) are one layer and use each other.</summary>
    private const int Composition = 5;

    private sealed record Place(int Layer, string Side = "", int Step = 0);

    /// <summary>Whether code in <paramref name="from"/> may use <paramref name="to"/>.</summary>
    private static bool MayUse(Place from, Place to) =>
        to.Layer < from.Layer
        || (to.Layer == from.Layer && from.Layer == Composition)
        || (to.Layer == from.Layer && to.Side == from.Side && to.Step < from.Step);

    private static readonly Dictionary<short, OpCode> s_opCodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    [Fact]
    public void Layers_NoTypeReferencesAHigherLayerOrASibling()
    {
        var assembly = typeof(ClusterOptions).Assembly;
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            if (PlaceOf(type) is not { } from)
            {
                continue; // compiler-generated helpers with no namespace
            }

            foreach (var used in ReferencedTypes(type).Where(t => t.Assembly == assembly).Distinct())
            {
                if (PlaceOf(used) is { } to && used.Namespace != type.Namespace && !MayUse(from, to))
                {
                    violations.Add($"{type.Namespace} → {used.Namespace}: {Outermost(type).Name} uses {Outermost(used).Name}");
                }
            }
        }

        Assert.True(violations.Count == 0, "Layer violations:\n" + string.Join('\n', violations));
    }

    [Fact]
    public void Layers_EveryNamespaceOfTheLibraryHasALayer()
    {
        var namespaces = typeof(ClusterOptions).Assembly.GetTypes().Select(t => t.Namespace).OfType<string>()
            .Where(n => !n.StartsWith("System", StringComparison.Ordinal) && !n.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal))
            .Distinct();

        Assert.All(namespaces, n => Assert.True(s_places.ContainsKey(n), $"{n} has no layer"));
    }

    private static Place? PlaceOf(Type type) => type.Namespace is { } ns && s_places.TryGetValue(ns, out var place) ? place : null;

    private static Type Outermost(Type type) => type.DeclaringType is { } outer ? Outermost(outer) : type;

    private static IEnumerable<Type> ReferencedTypes(Type type)
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var direct = new List<Type>();
        if (type.BaseType is { } baseType)
        {
            direct.Add(baseType);
        }

        direct.AddRange(type.GetInterfaces());
        direct.AddRange(type.GetFields(All).Select(f => f.FieldType));
        foreach (var method in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (method is MethodInfo info)
            {
                direct.Add(info.ReturnType);
            }

            direct.AddRange(method.GetParameters().Select(p => p.ParameterType));
            direct.AddRange(TypesInBody(method));
        }

        return direct.SelectMany(Flatten);
    }

    /// <summary>A type with its element and generic argument types.</summary>
    private static IEnumerable<Type> Flatten(Type type)
    {
        if (type.HasElementType)
        {
            foreach (var inner in Flatten(type.GetElementType()!))
            {
                yield return inner;
            }

            yield break;
        }

        if (type.IsGenericParameter)
        {
            yield break;
        }

        yield return type.IsGenericType ? type.GetGenericTypeDefinition() : type;
        if (type.IsGenericType)
        {
            foreach (var argument in type.GetGenericArguments().SelectMany(Flatten))
            {
                yield return argument;
            }
        }
    }

    /// <summary>Every type a method body names: the declaring types of the members it calls and touches, and the types it uses.</summary>
    private static IEnumerable<Type> TypesInBody(MethodBase method)
    {
        var il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null)
        {
            yield break;
        }

        var genericTypeArguments = method.DeclaringType!.IsGenericType ? method.DeclaringType.GetGenericArguments() : null;
        var genericMethodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        var position = 0;
        while (position < il.Length)
        {
            short value = il[position++];
            if (value == 0xFE)
            {
                value = (short)(0xFE00 | il[position++]);
            }

            var opCode = s_opCodes[value];
            switch (opCode.OperandType)
            {
                case OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok:
                    var token = BitConverter.ToInt32(il, position);
                    position += 4;
                    var member = method.Module.ResolveMember(token, genericTypeArguments, genericMethodArguments);
                    switch (member)
                    {
                        case Type used:
                            yield return used;
                            break;
                        case FieldInfo field:
                            yield return field.DeclaringType!;
                            yield return field.FieldType;
                            break;
                        case MethodBase called:
                            yield return called.DeclaringType!;
                            if (called is MethodInfo { IsGenericMethod: true } generic)
                            {
                                foreach (var argument in generic.GetGenericArguments())
                                {
                                    yield return argument;
                                }
                            }

                            break;
                    }

                    break;
                case OperandType.InlineSwitch:
                    position += 4 + (4 * BitConverter.ToInt32(il, position));
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    position += 8;
                    break;
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    position += 1;
                    break;
                case OperandType.InlineVar:
                    position += 2;
                    break;
                default:
                    position += 4;
                    break;
            }
        }
    }
}
