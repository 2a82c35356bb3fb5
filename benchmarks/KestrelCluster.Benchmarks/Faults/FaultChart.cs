// The picture of one scenario: successful requests per 100 ms over time, a line per setup, the fault instants marked.
// A self-contained SVG (no script, no web font): any browser, GitHub's file view or an editor shows it.
using System.Globalization;
using System.Net;
using System.Text;

namespace KestrelCluster.Benchmarks.Faults;

internal static class FaultChart
{
    private const double Width = 960, Height = 360, Left = 60, Right = 250, Top = 40, Bottom = 50;

    public static string Svg(string title, double expectedPerBucket, IReadOnlyList<TimeSpan> faults,
        IReadOnlyList<(LabSetup Setup, int[] OkPerBucket)> lines)
    {
        var buckets = lines.Max(l => l.OkPerBucket.Length);
        var peak = Math.Max(expectedPerBucket * 1.25, lines.Max(l => l.OkPerBucket.DefaultIfEmpty(0).Max()));
        double X(double bucket) => Left + (bucket / Math.Max(1, buckets) * (Width - Left - Right));
        double Y(double value) => Height - Bottom - (Math.Min(value, peak) / peak * (Height - Top - Bottom));
        var svg = new StringBuilder();
        void Add(FormattableString text) => svg.AppendLine(text.ToString(CultureInfo.InvariantCulture));
        Add($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">");
        Add($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>");
        Add($"<text x=\"{Left}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{WebUtility.HtmlEncode(title)}</text>");

        // Axes, with a grid line per second and at the expected rate.
        for (var second = 0; second * 10 <= buckets; second += buckets > 400 ? 5 : buckets > 150 ? 2 : 1)
        {
            Add($"<line x1=\"{X(second * 10):0.#}\" y1=\"{Top}\" x2=\"{X(second * 10):0.#}\" y2=\"{Height - Bottom}\" stroke=\"#eee\"/>");
            Add($"<text x=\"{X(second * 10):0.#}\" y=\"{Height - Bottom + 16}\" text-anchor=\"middle\" fill=\"#555\">{second}</text>");
        }

        Add($"<text x=\"{(Left + Width - Right) / 2:0.#}\" y=\"{Height - 12}\" text-anchor=\"middle\" fill=\"#555\">seconds</text>");
        foreach (var value in new[] { 0, expectedPerBucket / 2, expectedPerBucket })
        {
            Add($"<line x1=\"{Left}\" y1=\"{Y(value):0.#}\" x2=\"{Width - Right}\" y2=\"{Y(value):0.#}\" stroke=\"{(value == expectedPerBucket ? "#999" : "#eee")}\" {(value == expectedPerBucket ? "stroke-dasharray=\"2,3\"" : "")}/>");
            Add($"<text x=\"{Left - 6}\" y=\"{Y(value) + 4:0.#}\" text-anchor=\"end\" fill=\"#555\">{value:0}</text>");
        }

        Add($"<text transform=\"translate(16 {(Top + Height - Bottom) / 2:0.#}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555\">answered per 100 ms</text>");
        foreach (var fault in faults)
        {
            var x = X(fault.TotalMilliseconds / 100);
            Add($"<line x1=\"{x:0.#}\" y1=\"{Top}\" x2=\"{x:0.#}\" y2=\"{Height - Bottom}\" stroke=\"#c00\" stroke-width=\"1\" stroke-dasharray=\"4,3\"/>");
        }

        var legendY = Top + 6.0;
        foreach (var (setup, ok) in lines)
        {
            var points = string.Join(' ', ok.Select((value, i) => string.Create(CultureInfo.InvariantCulture, $"{X(i + 0.5):0.#},{Y(value):0.#}")));
            Add($"<polyline fill=\"none\" stroke=\"{setup.Color}\" stroke-width=\"1.6\" stroke-linejoin=\"round\" points=\"{points}\"/>");
            Add($"<line x1=\"{Width - Right + 16}\" y1=\"{legendY:0.#}\" x2=\"{Width - Right + 36}\" y2=\"{legendY:0.#}\" stroke=\"{setup.Color}\" stroke-width=\"3\"/>");
            Add($"<text x=\"{Width - Right + 42}\" y=\"{legendY + 4:0.#}\">{WebUtility.HtmlEncode(setup.Description)}</text>");
            legendY += 20;
        }

        if (faults.Count > 0)
        {
            Add($"<line x1=\"{Width - Right + 16}\" y1=\"{legendY:0.#}\" x2=\"{Width - Right + 36}\" y2=\"{legendY:0.#}\" stroke=\"#c00\" stroke-dasharray=\"4,3\"/>");
            Add($"<text x=\"{Width - Right + 42}\" y=\"{legendY + 4:0.#}\">the fault</text>");
            legendY += 20;
        }

        Add($"<text x=\"{Width - Right + 16}\" y=\"{legendY + 4:0.#}\" fill=\"#555\">dotted: the rate sent</text>");
        svg.AppendLine("</svg>");
        return svg.ToString();
    }
}
