// The library's layers, checked over the built assembly: Hosting → Primary / Worker → Messaging / Scheduling →
// the public contracts → Protocol → Interop, nothing upward and nothing sideways between siblings. Every type, field, signature and
// method body (each member its IL names) is read; a reference that breaks the order fails the test by name.
using System.Reflection;
using System.Reflection.Emit;

namespace KestrelCluster.Tests;

public sealed class LayeringTests
{
    /// <summary>Namespace → layer. Siblings share a layer and may not reference each other.</summary>
    private static readonly Dictionary<string, int> s_layers = new(StringComparer.Ordinal)
    {
        ["KestrelCluster.Interop"] = 0,
        ["KestrelCluster.Protocol"] = 1,
        ["KestrelCluster"] = 2, // the public contracts (options, interfaces, their small data types)
        ["KestrelCluster.Messaging"] = 3,
        ["KestrelCluster.Scheduling"] = 3,
        ["KestrelCluster.Primary"] = 4,
        ["KestrelCluster.Worker"] = 4,
        ["KestrelCluster.Hosting"] = 5,
        ["Microsoft.AspNetCore.Hosting"] = 5, // UseClusterTransport, where ASP.NET Core puts Use* extensions
        ["Microsoft.Extensions.DependencyInjection"] = 5, // Add* extensions, likewise
        ["Microsoft.AspNetCore.Builder"] = 5, // Map* extensions (MapClusterStatus), likewise
        ["Microsoft.Extensions.Hosting"] = 5, // IsClusterPrimary on the host builder and the host, likewise
        ["Microsoft.Extensions.Configuration.Binder.SourceGeneration"] = 5, // the binder generated for ClusterOptionsBinder
    };

    /// <summary>The composition layer: its namespaces (ours and the conventional ones) are one layer and use each other.</summary>
    private const int Composition = 5;

    private static readonly Dictionary<short, OpCode> s_opCodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    [Fact]
    public void Layers_NoTypeReferencesAHigherLayerOrASibling()
    {
        var assembly = typeof(ClusterOptions).Assembly;
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            if (LayerOf(type) is not { } from)
            {
                continue; // compiler-generated helpers with no namespace
            }

            foreach (var used in ReferencedTypes(type).Where(t => t.Assembly == assembly).Distinct())
            {
                if (LayerOf(used) is { } to && used.Namespace != type.Namespace && (to > from || (to == from && from != Composition)))
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

        Assert.All(namespaces, n => Assert.True(s_layers.ContainsKey(n), $"{n} has no layer"));
    }

    private static int? LayerOf(Type type) => type.Namespace is { } ns && s_layers.TryGetValue(ns, out var layer) ? layer : null;

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
