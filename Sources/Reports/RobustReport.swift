import DiffusionClassifier
import Foundation

/// `RUN/report.html` for robustness runs (`diffclass robust`): one self-contained page (inline CSS
/// and SVG; the clean/adversarial images are PNGs in `data:` URIs) on `run` and the `compare`
/// runs: a table of clean and robust accuracy (± standard error), breaks per attack, U-Net passes
/// and seconds per attacked image; robust accuracy against epsilon, one line per defence (runs
/// whose settings differ only in the budget), starting at the clean accuracy at epsilon 0; where
/// each run's images went (robust, broken by each attack, misclassified clean); and a grid of
/// clean/adversarial pairs per run that has them (`--save-adv`). All text from files is escaped.
public struct RobustReport {
    public var runs: [RobustRunData]
    /// Pairs shown per run at most.
    public var maxPairs: Int

    public init(runs: [RobustRunData], maxPairs: Int = 24) {
        precondition(!runs.isEmpty, "RobustReport: no runs")
        self.runs = runs
        self.maxPairs = maxPairs
    }

    /// Loads `directory` and each of `compare`; every folder must be a robustness run (errors name it).
    public static func load(_ directory: URL, compare: [URL] = []) throws -> RobustReport {
        let all = [directory] + compare
        for d in all where !RobustRunData.isRobustFolder(d) {
            throw ClassifierError("\(d.path): not a robustness run folder (a robustness report compares robustness runs only)")
        }
        return RobustReport(runs: try all.map { try RobustRunData.load($0) })
    }

    public var run: RobustRunData { runs[0] }

    /// Defences (runs of equal settings apart from the budget), in order of first appearance,
    /// each with its runs sorted by epsilon, and a label.
    public var families: [(label: String, runs: [RobustRunData])] {
        var keys: [String] = [], groups: [String: [RobustRunData]] = [:]
        for r in runs {
            if groups[r.familyKey] == nil { keys.append(r.familyKey) }
            groups[r.familyKey, default: []].append(r)
        }
        var out: [(String, [RobustRunData])] = []
        var used: [String: Int] = [:]
        for k in keys {
            let rs = groups[k]!.sorted { $0.epsilon < $1.epsilon }
            var label = "\(rs[0].defence); \(rs[0].attackDescription)"
            used[label, default: 0] += 1
            if used[label]! > 1 { label += " (#\(used[label]!))" }
            out.append((label, rs))
        }
        return out
    }

    /// Robust accuracy against epsilon per defence: the first point (epsilon 0) is the clean
    /// accuracy of the defence's largest run, then each run's robust accuracy, ± standard error.
    public func epsilonSeries() -> [ChartSeries] {
        families.enumerated().map { i, f in
            let biggest = f.runs.max { $0.n < $1.n }!
            var points = [(x: 0.0, y: biggest.cleanAccuracy, err: biggest.cleanStderr)]
            var labels = [String(format: "%@: clean %.2f%% ± %.2f (n = %d)", f.label, 100 * biggest.cleanAccuracy, 100 * biggest.cleanStderr, biggest.n)]
            for r in f.runs {
                points.append((r.epsilon, r.robustAccuracy, r.robustStderr))
                labels.append(String(format: "%@: %@ eps %@, robust %.2f%% ± %.2f (n = %d)", f.label, r.norm, r.epsText,
                                     100 * r.robustAccuracy, 100 * r.robustStderr, r.n))
            }
            return ChartSeries(name: f.label, color: Palette.series[i % Palette.series.count], points: points, labels: labels)
        }
    }

    /// The page.
    public func html() -> String {
        var body: [String] = ["<h1>Robustness report: \(htmlEscape(runs.map(\.name).joined(separator: ", ")))</h1>"]
        body.append(headline(run))
        body.append("<h2>Runs</h2>\n" + table())
        let norms = Set(runs.map(\.norm))
        body.append(Report.section("Robust accuracy against epsilon",
                                   "One line per defence and attack setting; epsilon 0 is the clean accuracy; error bars: ± one standard error"
                                   + (norms.count > 1 ? " (mixed norms: \(norms.sorted().joined(separator: ", ")))." : " (\(norms.first!))."),
                                   Charts.xy(epsilonSeries(), xLabel: "epsilon (\(norms.sorted().joined(separator: ", ")), pixels in [0, 1])",
                                             yLabel: "accuracy")))
        body.append(outcomes())
        for r in runs { if let g = pairGrid(r) { body.append(g) } }
        let rows = run.settings.map { "<tr><th>\(htmlEscape($0.key))</th><td>\(htmlEscape($0.value))</td></tr>" }
        body.append("<h2>Settings of \(htmlEscape(run.name))</h2>\n<table class=\"kv\">\n\(rows.joined(separator: "\n"))\n</table>")
        return Report.page(title: "\(runs.map(\.name).joined(separator: ", ")) robustness report", body: body)
    }

    /// Writes `html()` to `url` atomically; errors name the file.
    public func write(to url: URL) throws {
        do { try Data(html().utf8).write(to: url, options: .atomic) } catch {
            throw ClassifierError("\(url.path): cannot write the report (\(error.localizedDescription))")
        }
    }

    func headline(_ r: RobustRunData) -> String {
        let line = String(format: "clean <strong>%.2f%% ± %.2f</strong>, robust <strong>%.2f%% ± %.2f</strong> (n = %d), %.0f U-Net passes, %.1f s per attacked image",
                          100 * r.cleanAccuracy, 100 * r.cleanStderr, 100 * r.robustAccuracy, 100 * r.robustStderr, r.n,
                          r.meanPassesPerAttacked, r.meanSecondsPerAttacked)
        return "<p class=\"headline\">\(line)</p>\n<p>\(htmlEscape("\(r.defence); \(r.norm) eps \(r.epsText); \(r.attackDescription)"))</p>"
    }

    func table() -> String {
        var rows = ["<tr><th>run</th><th class=\"text\">defence</th><th class=\"text\">attacks</th><th>eps</th><th>n</th><th>clean</th><th>robust</th>"
            + "<th class=\"text\">broken by</th><th>U-Net passes / attacked image</th><th>s / attacked image</th></tr>"]
        for r in runs {
            let breaks = r.breaks.map { "\($0.name) \($0.count)" }.joined(separator: ", ")
            rows.append("<tr><td>\(htmlEscape(r.name))</td><td class=\"text\">\(htmlEscape(r.defence))</td><td class=\"text\">\(htmlEscape(r.attackDescription))</td>"
                + "<td>\(htmlEscape(r.epsText))</td><td>\(r.n)</td>"
                + String(format: "<td>%.2f%% ± %.2f</td><td>%.2f%% ± %.2f</td>", 100 * r.cleanAccuracy, 100 * r.cleanStderr,
                         100 * r.robustAccuracy, 100 * r.robustStderr)
                + "<td class=\"text\">\(htmlEscape(breaks))</td>"
                + String(format: "<td>%.0f</td><td>%.1f</td></tr>", r.meanPassesPerAttacked, r.meanSecondsPerAttacked))
        }
        return "<table class=\"runs\">\n" + rows.joined(separator: "\n") + "\n</table>"
    }

    /// Per run: fractions robust, broken by each attack (in order), misclassified clean.
    func outcomes() -> String {
        var attackOrder: [String] = []
        for r in runs { for a in r.attackNames where !attackOrder.contains(a) { attackOrder.append(a) } }
        let segments = ["robust"] + attackOrder.map { "broken by \($0)" } + ["misclassified clean"]
        let colors = ["#2ca02c"] + attackOrder.indices.map { ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"][$0 % 5] } + ["#999999"]
        let rows = runs.map { r -> (name: String, values: [Double]) in
            let n = Double(Swift.max(r.n, 1))
            let broken = attackOrder.map { a in Double(r.records.filter { $0.brokenBy?.rawValue == a }.count) / n }
            return ("\(r.name) (eps \(r.epsText))", [Double(r.robustCount) / n] + broken + [Double(r.n - r.cleanCorrect) / n])
        }
        return Report.section("Where the images went", "Per run, the fraction of its images that stayed robust, that each attack broke first "
                              + "(attacks run in order; an image leaves at the first success), and that were misclassified clean (not attacked).",
                              Charts.stackedBars(rows, segments: segments, colors: colors))
    }

    /// Clean (left) and adversarial (right) images of broken images, up to `maxPairs`.
    func pairGrid(_ r: RobustRunData) -> String? {
        let all = r.pairs()
        guard !all.isEmpty else { return nil }
        let shown = Array(all.prefix(maxPairs))
        let cell = 56.0, gap = 8.0, captionH = 30.0, columns = 4
        let pairW = 2 * cell + 4, colW = pairW + 3 * gap
        let rowsCount = (shown.count + columns - 1) / columns
        var svg = SVGCanvas(width: Double(columns) * colW + gap, height: Double(rowsCount) * (cell + captionH + gap) + gap)
        for (k, p) in shown.enumerated() {
            let x = gap + Double(k % columns) * colW, y = gap + Double(k / columns) * (cell + captionH + gap)
            let rec = p.record
            let by = rec.brokenBy?.rawValue ?? ""
            svg.png(p.clean, x: x, y: y, width: cell, height: cell, title: "#\(rec.index) clean, label \(r.className(rec.label))")
            svg.png(p.adversarial, x: x + cell + 4, y: y, width: cell, height: cell, title: "#\(rec.index) adversarial (\(r.norm) eps \(r.epsText)), broken by \(by)")
            svg.text("#\(rec.index) \(r.className(rec.label))", x: x, y: y + cell + 12, size: 10)
            svg.text("broken by \(by)", x: x, y: y + cell + 24, size: 10, fill: "#d62728")
        }
        let note = "\(all.count) broken image\(all.count == 1 ? "" : "s") saved by the run"
            + (all.count > shown.count ? ", the first \(shown.count) shown" : "") + "; left clean, right adversarial (\(r.norm) eps \(r.epsText))."
        return Report.section("Clean and adversarial pairs: \(r.name)", note, svg.render())
    }
}
