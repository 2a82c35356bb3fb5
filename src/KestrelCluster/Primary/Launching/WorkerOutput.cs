// A worker's stdout and stderr, read by the primary through pipes and written to the primary's own console as whole
// lines, each attributed to the worker (WorkerOutputFormat). The primary owns the console: lines of two workers never
// interleave, even mid-crash, because each one is written in one call to the console's synchronized writer — the
// writer the primary's own console logger uses too.

namespace KestrelCluster.Primary.Launching;

internal static class WorkerOutput
{
    /// <summary>A longer line is written in parts of this many bytes, each attributed.</summary>
    internal const int MaxLineBytes = 64 * 1024;

    /// <summary>Copies <paramref name="pipe"/> line by line until the worker (and anything it started) closes it.</summary>
    public static async Task PumpAsync(Stream pipe, TextWriter console, ConsoleFormat format, int workerId, int slot, bool isError)
    {
        var buffer = new byte[MaxLineBytes];
        var length = 0;
        try
        {
            while (true)
            {
                var read = await pipe.ReadAsync(buffer.AsMemory(length)).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                var start = 0;
                var end = length + read;
                for (var newline = Array.IndexOf(buffer, (byte)'\n', length, read); newline >= 0;
                    newline = Array.IndexOf(buffer, (byte)'\n', start, end - start))
                {
                    Write(console, buffer.AsSpan(start, newline - start), format, workerId, slot, isError);
                    start = newline + 1;
                }

                length = end - start;
                if (length == buffer.Length)
                {
                    Write(console, buffer, format, workerId, slot, isError); // no newline in 64 KiB: write what there is
                    length = 0;
                }
                else if (start > 0)
                {
                    buffer.AsSpan(start, length).CopyTo(buffer);
                }
            }
        }
        catch (IOException)
        {
            // The pipe broke: the worker is gone. What it wrote before is out.
        }
        catch (ObjectDisposedException)
        {
        }

        if (length > 0)
        {
            Write(console, buffer.AsSpan(0, length), format, workerId, slot, isError); // the last line had no newline
        }
    }

    private static void Write(TextWriter console, ReadOnlySpan<byte> line, ConsoleFormat format, int workerId, int slot, bool isError)
    {
        if (line is [.., (byte)'\r'])
        {
            line = line[..^1];
        }

        try
        {
            console.Write(WorkerOutputFormat.Attribute(line, format, workerId, slot, isError));
        }
        catch (IOException)
        {
            // The primary's own console is gone (its terminal closed): nothing to write to, and the worker must not block.
        }
    }
}
