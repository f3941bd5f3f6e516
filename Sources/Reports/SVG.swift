import Foundation

/// Escapes text for HTML and SVG content and attribute values (& < > " ').
public func htmlEscape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for ch in text {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(ch)
        }
    }
    return out
}

/// A number for an SVG attribute: at most 2 decimals, no trailing zeros.
func svgNumber(_ x: Double) -> String {
    guard x.isFinite else { return "0" }
    var s = String(format: "%.2f", x)
    while s.contains("."), s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s == "-0" ? "0" : s
}

/// A small inline-SVG builder: elements are appended as strings, text is always escaped.
public struct SVGCanvas {
    public let width: Double
    public let height: Double
    public private(set) var elements: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// A rectangle; `title` becomes a hover tooltip.
    public mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil, title: String? = nil) {
        let s = stroke.map { " stroke=\"\(htmlEscape($0))\"" } ?? ""
        let body = title.map { "<title>\(htmlEscape($0))</title>" } ?? ""
        elements.append("<rect x=\"\(svgNumber(x))\" y=\"\(svgNumber(y))\" width=\"\(svgNumber(max(width, 0)))\" height=\"\(svgNumber(max(height, 0)))\" fill=\"\(htmlEscape(fill))\"\(s)>\(body)</rect>")
    }

    public mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#444", width: Double = 1, dash: String? = nil) {
        let d = dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
        elements.append("<line x1=\"\(svgNumber(x1))\" y1=\"\(svgNumber(y1))\" x2=\"\(svgNumber(x2))\" y2=\"\(svgNumber(y2))\" stroke=\"\(htmlEscape(stroke))\" stroke-width=\"\(svgNumber(width))\"\(d)/>")
    }

    public mutating func circle(cx: Double, cy: Double, r: Double, fill: String, title: String? = nil) {
        let body = title.map { "<title>\(htmlEscape($0))</title>" } ?? ""
        elements.append("<circle cx=\"\(svgNumber(cx))\" cy=\"\(svgNumber(cy))\" r=\"\(svgNumber(r))\" fill=\"\(htmlEscape(fill))\">\(body)</circle>")
    }

    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 1.5, dash: String? = nil) {
        guard points.count >= 2 else { return }
        let p = points.map { "\(svgNumber($0.0)),\(svgNumber($0.1))" }.joined(separator: " ")
        let d = dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
        elements.append("<polyline points=\"\(p)\" fill=\"none\" stroke=\"\(htmlEscape(stroke))\" stroke-width=\"\(svgNumber(width))\"\(d)/>")
    }

    /// Text at (x, y); `anchor` start, middle or end; `rotate` degrees about (x, y).
    public mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Double = 11, rotate: Double? = nil,
                              fill: String = "#222", bold: Bool = false) {
        let r = rotate.map { " transform=\"rotate(\(svgNumber($0)) \(svgNumber(x)) \(svgNumber(y)))\"" } ?? ""
        let w = bold ? " font-weight=\"bold\"" : ""
        elements.append("<text x=\"\(svgNumber(x))\" y=\"\(svgNumber(y))\" text-anchor=\"\(anchor)\" font-size=\"\(svgNumber(size))\" fill=\"\(htmlEscape(fill))\"\(w)\(r)>\(htmlEscape(s))</text>")
    }

    /// An embedded PNG (`data:` URI, so the page stays self-contained), drawn with square pixels.
    public mutating func png(_ data: Data, x: Double, y: Double, width: Double, height: Double, title: String? = nil) {
        let body = title.map { "<title>\(htmlEscape($0))</title>" } ?? ""
        elements.append("<image x=\"\(svgNumber(x))\" y=\"\(svgNumber(y))\" width=\"\(svgNumber(width))\" height=\"\(svgNumber(height))\" "
            + "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,\(data.base64EncodedString())\">\(body)</image>")
    }

    /// The `<svg>` element.
    public func render() -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(svgNumber(width))\" height=\"\(svgNumber(height))\" viewBox=\"0 0 \(svgNumber(width)) \(svgNumber(height))\" font-family=\"sans-serif\">\n"
            + elements.joined(separator: "\n") + "\n</svg>"
    }
}

/// Maps data values to pixels along one axis, linear or log10.
public struct AxisScale {
    public var lower: Double, upper: Double
    public var from: Double, to: Double
    public var log: Bool

    public init(lower: Double, upper: Double, from: Double, to: Double, log: Bool = false) {
        self.lower = lower; self.upper = upper; self.from = from; self.to = to; self.log = log
    }

    public func map(_ v: Double) -> Double {
        let f = { (x: Double) in self.log ? Foundation.log10(Swift.max(x, 1e-300)) : x }
        let span = f(upper) - f(lower)
        let u = span == 0 ? 0.5 : (f(v) - f(lower)) / span
        return from + u * (to - from)
    }

    /// Tick values: powers of ten (and 2x, 5x when few) for log axes, ~`count` round steps for linear ones.
    public func ticks(count: Int = 5) -> [Double] {
        if log {
            var out: [Double] = []
            var p = pow(10, floor(log10(Swift.max(lower, 1e-300))))
            while p <= upper * 1.0001 {
                for m in [1.0, 2, 5] where p * m >= lower * 0.9999 && p * m <= upper * 1.0001 { out.append(p * m) }
                p *= 10
            }
            return out
        }
        let raw = (upper - lower) / Double(Swift.max(count, 1))
        guard raw > 0 else { return [lower] }
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        let first = Int(ceil(lower / step - 1e-9)), last = Int(floor(upper / step + 1e-9))
        guard first <= last else { return [lower] }
        // i * step rounded to the step's decimals, so 3 * 0.2 prints (and compares) as 0.6.
        let digits = Swift.max(0, Int(-floor(log10(step))) + 1)
        let scale = pow(10, Double(digits))
        return (first...last).map { (Double($0) * step * scale).rounded() / scale }
    }
}
