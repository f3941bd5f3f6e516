import Foundation

/// One series of an x-y chart: points with optional error bars (± err), joined by a line or not.
public struct ChartSeries {
    public var name: String
    public var color: String
    public var points: [(x: Double, y: Double, err: Double)]
    public var line: Bool
    /// Per point hover text (optional).
    public var labels: [String]?

    public init(name: String, color: String, points: [(x: Double, y: Double, err: Double)], line: Bool = true, labels: [String]? = nil) {
        self.name = name; self.color = color; self.points = points; self.line = line; self.labels = labels
    }
}

/// A reliability-diagram bin: confidences in (lower, upper].
public struct ReliabilityBin: Equatable {
    public var lower: Double, upper: Double
    public var count: Int
    public var accuracy: Double
    public var confidence: Double
}

/// Colours for series and heat maps.
public enum Palette {
    /// Distinct colours for up to 16 series (a report comparing every row of a strategy table);
    /// beyond that they repeat. Gray is left out: it draws the "runs by cost" line.
    public static let series = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                                "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#e7969c"]

    /// White to dark blue for u in [0, 1].
    public static func heat(_ u: Double) -> String {
        let v = Swift.min(Swift.max(u, 0), 1)
        let r = Int(247 - v * (247 - 8)), g = Int(251 - v * (251 - 48)), b = Int(255 - v * (255 - 107))
        return String(format: "#%02x%02x%02x", r, g, b)
    }
}

/// The charts of a report, each an inline `<svg>` string.
public enum Charts {
    /// Rows = true class, columns = predicted class; cell shade by row fraction, count written in it.
    public static func confusionMatrix(_ counts: [[Int]], names: [String]) -> String {
        let k = counts.count
        let cell = k <= 10 ? 44.0 : Swift.max(14, 440 / Double(k))
        let left = 120.0, top = 30.0, bottom = 110.0
        var svg = SVGCanvas(width: left + cell * Double(k) + 20, height: top + cell * Double(k) + bottom)
        for (i, row) in counts.enumerated() {
            let total = row.reduce(0, +)
            for (j, c) in row.enumerated() {
                let u = total == 0 ? 0 : Double(c) / Double(total)
                let x = left + Double(j) * cell, y = top + Double(i) * cell
                svg.rect(x: x, y: y, width: cell, height: cell, fill: Palette.heat(u), stroke: "#ddd",
                         title: "true \(names[i]), predicted \(names[j]): \(c)")
                if cell >= 20 {
                    svg.text("\(c)", x: x + cell / 2, y: y + cell / 2 + 4, anchor: "middle", size: 11, fill: u > 0.5 ? "#fff" : "#222")
                }
            }
            svg.text(names[i], x: left - 6, y: top + (Double(i) + 0.5) * cell + 4, anchor: "end")
        }
        for j in 0..<k {
            let x = left + (Double(j) + 0.5) * cell, y = top + Double(k) * cell + 8
            svg.text(names[j], x: x, y: y, anchor: "end", rotate: -45)
        }
        svg.text("predicted", x: left + cell * Double(k) / 2, y: top + Double(k) * cell + bottom - 6, anchor: "middle", bold: true)
        svg.text("true class", x: 14, y: top + cell * Double(k) / 2, anchor: "middle", rotate: -90, bold: true)
        return svg.render()
    }

    /// Horizontal bars in [0, 1] (nil = no data), value written at the end of each bar.
    public static func bars(_ values: [Double?], names: [String], color: String = Palette.series[0]) -> String {
        let left = 120.0, barH = 20.0, gap = 4.0, width = 320.0, top = 10.0
        var svg = SVGCanvas(width: left + width + 70, height: top + Double(values.count) * (barH + gap) + 30)
        let scale = AxisScale(lower: 0, upper: 1, from: left, to: left + width)
        for (i, v) in values.enumerated() {
            let y = top + Double(i) * (barH + gap)
            svg.text(names[i], x: left - 6, y: y + barH / 2 + 4, anchor: "end")
            svg.rect(x: left, y: y, width: width, height: barH, fill: "#f0f0f0")
            if let v {
                svg.rect(x: left, y: y, width: scale.map(v) - left, height: barH, fill: color, title: "\(names[i]): \(percent(v))")
                svg.text(percent(v), x: scale.map(v) + 4, y: y + barH / 2 + 4)
            } else {
                svg.text("no images", x: left + 4, y: y + barH / 2 + 4, fill: "#888")
            }
        }
        let axisY = top + Double(values.count) * (barH + gap) + 4
        for t in scale.ticks(count: 5) {
            svg.line(x1: scale.map(t), y1: axisY - 2, x2: scale.map(t), y2: axisY + 2)
            svg.text(percent(t, digits: 0), x: scale.map(t), y: axisY + 14, anchor: "middle", size: 10)
        }
        return svg.render()
    }

    /// Horizontal stacked bars, one per row, each row's segments fractions of 1 (the row's
    /// images), one colour per segment name; the legend names the segments.
    public static func stackedBars(_ rows: [(name: String, values: [Double])], segments: [String], colors: [String]) -> String {
        let left = 200.0, barH = 20.0, gap = 6.0, width = 400.0, top = 10.0
        let legendTop = top + Double(rows.count) * (barH + gap) + 26
        var svg = SVGCanvas(width: left + width + 30, height: legendTop + 18 * Double(segments.count) + 6)
        let scale = AxisScale(lower: 0, upper: 1, from: left, to: left + width)
        for (i, row) in rows.enumerated() {
            let y = top + Double(i) * (barH + gap)
            svg.text(row.name, x: left - 6, y: y + barH / 2 + 4, anchor: "end")
            var at = 0.0
            for (j, v) in row.values.enumerated() where v > 0 {
                let x0 = scale.map(at), x1 = scale.map(Swift.min(at + v, 1))
                svg.rect(x: x0, y: y, width: x1 - x0, height: barH, fill: colors[j % colors.count], stroke: "#fff",
                         title: "\(row.name): \(segments[j]) \(percent(v))")
                if x1 - x0 >= 34 { svg.text(percent(v, digits: 0), x: (x0 + x1) / 2, y: y + barH / 2 + 4, anchor: "middle", size: 10, fill: "#fff") }
                at += v
            }
        }
        let axisY = top + Double(rows.count) * (barH + gap) + 2
        for t in scale.ticks(count: 5) {
            svg.line(x1: scale.map(t), y1: axisY - 2, x2: scale.map(t), y2: axisY + 2)
            svg.text(percent(t, digits: 0), x: scale.map(t), y: axisY + 14, anchor: "middle", size: 10)
        }
        for (j, name) in segments.enumerated() {
            let y = legendTop + 18 * Double(j)
            svg.rect(x: left, y: y - 10, width: 12, height: 12, fill: colors[j % colors.count])
            svg.text(name, x: left + 18, y: y)
        }
        return svg.render()
    }

    /// Reliability diagram: per bin, a bar of accuracy against the bin's range of confidence, a
    /// marker at its mean confidence, and the diagonal of perfect calibration.
    public static func reliability(_ bins: [ReliabilityBin], ece: Double) -> String {
        let left = 56.0, top = 24.0, size = 300.0
        var svg = SVGCanvas(width: left + size + 30, height: top + size + 50)
        let x = AxisScale(lower: 0, upper: 1, from: left, to: left + size), y = AxisScale(lower: 0, upper: 1, from: top + size, to: top)
        axes(&svg, x: x, y: y, xLabel: "confidence (largest probability)", yLabel: "accuracy", percentY: true)
        svg.line(x1: x.map(0), y1: y.map(0), x2: x.map(1), y2: y.map(1), stroke: "#999", dash: "4 3")
        for b in bins where b.count > 0 {
            svg.rect(x: x.map(b.lower), y: y.map(b.accuracy), width: x.map(b.upper) - x.map(b.lower), height: y.map(0) - y.map(b.accuracy),
                     fill: Palette.series[0], stroke: "#fff",
                     title: "confidence \(svgNumber(b.lower))-\(svgNumber(b.upper)): \(b.count) images, accuracy \(percent(b.accuracy)), mean confidence \(percent(b.confidence))")
            svg.circle(cx: x.map(b.confidence), cy: y.map(b.confidence), r: 3, fill: Palette.series[1])
            // The bin's image count above its bar (how much each bar's accuracy can be trusted).
            svg.text("\(b.count)", x: (x.map(b.lower) + x.map(b.upper)) / 2, y: y.map(b.accuracy) - 3, anchor: "middle", size: 9, fill: "#555")
        }
        svg.text(String(format: "ECE %.4f", ece), x: left + 8, y: top + 14, bold: true)
        return svg.render()
    }

    /// An x-y chart with error bars; `logX` for a log10 x axis; y in [yLower, yUpper].
    /// `xTicks`: tick values instead of the axis' round ones (e.g. at the values of a few points).
    public static func xy(_ series: [ChartSeries], xLabel: String, yLabel: String, logX: Bool = false, yLower: Double = 0,
                          yUpper: Double = 1, percentY: Bool = true, xTicks: [Double]? = nil) -> String {
        let left = 56.0, top = 20.0, w = 440.0, h = 260.0
        let legendH = Double(series.count) * 16
        var svg = SVGCanvas(width: left + w + 30, height: top + h + 50 + legendH)
        let xs = series.flatMap { $0.points.map(\.x) }.filter { !logX || $0 > 0 }
        var lo = xs.min() ?? 0, hi = xs.max() ?? 1
        if logX { lo /= 1.5; hi *= 1.5 } else if lo == hi { lo -= 1; hi += 1 } else { let pad = (hi - lo) * 0.04; lo -= pad; hi += pad }
        let x = AxisScale(lower: lo, upper: hi, from: left, to: left + w, log: logX)
        let y = AxisScale(lower: yLower, upper: yUpper, from: top + h, to: top)
        axes(&svg, x: x, y: y, xLabel: xLabel, yLabel: yLabel, percentY: percentY, xTicks: xTicks)
        for (si, s) in series.enumerated() {
            let pts = s.points.filter { !logX || $0.x > 0 }
            if s.line { svg.polyline(pts.map { (x.map($0.x), y.map($0.y)) }, stroke: s.color) }
            for (pi, p) in pts.enumerated() {
                if p.err > 0 {
                    let (a, b) = (y.map(Swift.max(p.y - p.err, yLower)), y.map(Swift.min(p.y + p.err, yUpper)))
                    svg.line(x1: x.map(p.x), y1: a, x2: x.map(p.x), y2: b, stroke: s.color)
                    svg.line(x1: x.map(p.x) - 3, y1: a, x2: x.map(p.x) + 3, y2: a, stroke: s.color)
                    svg.line(x1: x.map(p.x) - 3, y1: b, x2: x.map(p.x) + 3, y2: b, stroke: s.color)
                }
                let tip = s.labels.map { $0[pi] } ?? "\(s.name): x \(svgNumber(p.x)), \(percentY ? percent(p.y) : svgNumber(p.y)) ± \(percentY ? percent(p.err) : svgNumber(p.err))"
                svg.circle(cx: x.map(p.x), cy: y.map(p.y), r: 3.5, fill: s.color, title: tip)
            }
            let ly = top + h + 46 + Double(si) * 16
            svg.line(x1: left, y1: ly - 4, x2: left + 18, y2: ly - 4, stroke: s.color, width: 2.5)
            svg.text(s.name, x: left + 24, y: ly)
        }
        return svg.render()
    }

    /// Axis lines, ticks and labels.
    static func axes(_ svg: inout SVGCanvas, x: AxisScale, y: AxisScale, xLabel: String, yLabel: String, percentY: Bool,
                     xTicks: [Double]? = nil) {
        svg.line(x1: x.from, y1: y.from, x2: x.to, y2: y.from)
        svg.line(x1: x.from, y1: y.from, x2: x.from, y2: y.to)
        for t in xTicks ?? x.ticks(count: 6) {
            svg.line(x1: x.map(t), y1: y.from, x2: x.map(t), y2: y.from + 4)
            svg.text(tickLabel(t), x: x.map(t), y: y.from + 16, anchor: "middle", size: 10)
        }
        for t in y.ticks(count: 5) {
            svg.line(x1: x.from - 4, y1: y.map(t), x2: x.from, y2: y.map(t))
            svg.line(x1: x.from, y1: y.map(t), x2: x.to, y2: y.map(t), stroke: "#eee")
            svg.text(percentY ? percent(t, digits: 0) : tickLabel(t), x: x.from - 6, y: y.map(t) + 4, anchor: "end", size: 10)
        }
        svg.text(xLabel, x: (x.from + x.to) / 2, y: y.from + 32, anchor: "middle")
        svg.text(yLabel, x: 14, y: (y.from + y.to) / 2, anchor: "middle", rotate: -90)
    }

    static func tickLabel(_ v: Double) -> String {
        abs(v) >= 1000 && v == v.rounded() ? String(Int(v)) : svgNumber(v)
    }

    static func percent(_ v: Double, digits: Int = 1) -> String { String(format: "%.\(digits)f%%", 100 * v) }
}
