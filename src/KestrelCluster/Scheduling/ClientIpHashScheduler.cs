// Sticky by client address, with rendezvous (highest random weight) hashing over worker slots: a client goes
// to the slot with the highest hash of (address, slot). A slot that is not ready drops out and its clients
// fall to their next-highest slot, the same one every time; adding or removing a slot moves only the clients
// whose highest slot changed — as few as possible.
using System.Net;
using System.Net.Sockets;

namespace KestrelCluster.Scheduling;

internal sealed class ClientIpHashScheduler : IConnectionScheduler
{
    public int Choose(in ScheduledConnection connection, ReadOnlySpan<WorkerCandidate> candidates)
    {
        var key = AddressKey(connection.RemoteEndPoint);
        var best = 0;
        var bestWeight = 0UL;
        for (var i = 0; i < candidates.Length; i++)
        {
            var weight = Mix(key ^ Mix((ulong)candidates[i].SlotIndex + 0x9E3779B97F4A7C15UL));
            if (i == 0 || weight > bestWeight)
            {
                best = i;
                bestWeight = weight;
            }
        }

        return best;
    }

    /// <summary>A stable 64-bit key for the client address (IPv4-mapped IPv6 counts as IPv4; Unix sockets share one key).</summary>
    internal static ulong AddressKey(EndPoint? endpoint)
    {
        if (endpoint is not IPEndPoint ip)
        {
            return 0;
        }

        var address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        var hash = 14695981039346656037UL; // FNV-1a
        foreach (var b in bytes[..length])
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash ^ (address.AddressFamily == AddressFamily.InterNetworkV6 ? 1UL : 0UL);
    }

    /// <summary>splitmix64's finalizer: spreads every input bit over the output.</summary>
    private static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
