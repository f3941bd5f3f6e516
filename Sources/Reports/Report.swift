import DiffusionClassifier
import Foundation

/// `RUN/report.html`: one self-contained page (inline CSS and SVG, no external assets) on an
/// evaluation run: headline numbers and settings, confusion matrix, per-class accuracy,
/// reliability diagram with ECE, accuracy against U-Net calls (with `compare` runs), and the
/// timestep analysis when `analysis.json` exists. All text from files is escaped.
public struct Report {
    public var run: RunData
    public var compare: [RunData]

    public init(run: RunData, compare: [RunData] = []) {
        self.run = run
        self.compare = compare
    }

    /// Loads `directory` and each of `compare` (errors name the folder or file).
    public static func load(_ directory: URL, compare: [URL] = []) throws -> Report {
        Report(run: try RunData.load(directory), compare: try compare.map { try RunData.load($0) })
    }

    /// The page.
    public func html() -> String {
        var body: [String] = []
        body.append("<h1>Diffusion classifier report: \(htmlEscape(run.name))</h1>")
        if !run.records.isEmpty {
            body.append(headline())
            body.append(confusionSection())
            body.append(perClassSection())
            let ece = run.expectedCalibrationError
            let nll = run.negativeLogLikelihood.map { String(format: "%.4f", $0) } ?? "infinite (a label had probability 0)"
            body.append(section("Reliability diagram",
                                String(format: "Accuracy against confidence of the recorded probabilities (15 bins; bars: accuracy, red dots: mean confidence, numbers: images per bin). ECE %.4f, NLL %@. ", ece, nll)
                                + calibrationNote(),
                                Charts.reliability(run.reliabilityBins(), ece: ece)))
            body.append(callsChart())
        }
        if let a = run.analysis { body.append(analysisSection(a)) }
        if !run.settings.isEmpty {
            let calibration = [(key: "calibration", value: run.calibrationFile ?? (run.isCalibrated ? "none (tau given directly)" : "none (uncalibrated, tau 1)"))]
            let rows = (run.settings + calibration + run.runValues).map { "<tr><th>\(htmlEscape($0.key))</th><td>\(htmlEscape($0.value))</td></tr>" }
            body.append("<h2>Settings</h2>\n<table class=\"kv\">\n\(rows.joined(separator: "\n"))\n</table>")
        }
        return Report.page(title: "\(run.name) report", body: body)
    }

    /// Above this many classes the report lists the most frequent confusions instead of drawing
    /// the matrix (a 1,000 x 1,000 matrix is neither readable nor small).
    public static let confusionMatrixLimit = 30
    /// Above this many classes the per-class bars show only the worst and best classes present.
    public static let perClassBarsLimit = 50
    /// Rows of the most-frequent-confusions table, and bars at each end of a large per-class chart.
    public static let topConfusionRows = 20, perClassEndBars = 10

    /// The confusion matrix, or above `confusionMatrixLimit` classes a table of the most frequent
    /// (true, predicted) pairs with their share of the true class's images.
    func confusionSection() -> String {
        let names = run.classNames
        guard names.count > Report.confusionMatrixLimit else {
            return section("Confusion matrix", "Rows: true class; columns: predicted class; shade: fraction of the row.",
                           Charts.confusionMatrix(run.confusion, names: names))
        }
        var perLabel: [Int: Int] = [:]
        for r in run.records { perLabel[r.label, default: 0] += 1 }
        let wrong = run.records.filter { !$0.correct }.count
        let top = EvaluationStatistics.topConfusions(run.records, limit: Report.topConfusionRows)
        let name = { (c: Int) in names.indices.contains(c) ? names[c] : "class \(c)" }
        let rows = top.map { t in
            String(format: "<tr><td class=\"text\">%@</td><td class=\"text\">%@</td><td>%d</td><td>%.1f%%</td></tr>",
                   htmlEscape("\(t.label) \(name(t.label))"), htmlEscape("\(t.prediction) \(name(t.prediction))"), t.count,
                   100 * Double(t.count) / Double(Swift.max(perLabel[t.label] ?? 1, 1)))
        }
        let distinct = Set(run.records.filter { !$0.correct }.map { "\($0.label) \($0.prediction)" }).count
        let note = "\(names.count) classes: instead of a \(names.count) x \(names.count) matrix, the \(top.count) most frequent of "
            + "\(distinct) distinct confusions (\(wrong) misclassified images of \(run.n)); share: of the true class's images."
        let table = top.isEmpty ? "<p>No misclassified images.</p>"
            : "<table class=\"runs\"><tr><th>true class</th><th>predicted</th><th>images</th><th>share</th></tr>\n"
              + rows.joined(separator: "\n") + "\n</table>"
        return "<h2>Most frequent confusions</h2>\n<p class=\"note\">\(htmlEscape(note))</p>\n" + table
    }

    /// Per-class accuracy bars; above `perClassBarsLimit` classes only the `perClassEndBars`
    /// worst and best of the classes with images (with their image counts), and how many have images.
    func perClassSection() -> String {
        let names = run.classNames, accuracy = run.perClassAccuracy
        guard names.count > Report.perClassBarsLimit else { return section("Per-class accuracy", nil, Charts.bars(accuracy, names: names)) }
        var perLabel: [Int: Int] = [:]
        for r in run.records { perLabel[r.label, default: 0] += 1 }
        let present = accuracy.indices.filter { accuracy[$0] != nil }
            .sorted { (accuracy[$0]!, -(perLabel[$0] ?? 0), $0) < (accuracy[$1]!, -(perLabel[$1] ?? 0), $1) }
        let k = Report.perClassEndBars
        let shown = present.count <= 2 * k ? present : Array(present.prefix(k)) + Array(present.suffix(k))
        let label = { (c: Int) in "\(names[c]) (\(perLabel[c] ?? 0))" }
        let mean = present.isEmpty ? 0 : present.map { accuracy[$0]! }.reduce(0, +) / Double(present.count)
        let note = "\(present.count) of \(names.count) classes have images (mean per-class accuracy "
            + String(format: "%.2f%%", 100 * mean) + "); "
            + (present.count <= 2 * k ? "all of them, worst first" : "the \(k) worst, then the \(k) best")
            + "; in brackets: images of the class."
        return section("Per-class accuracy", note, Charts.bars(shown.map { accuracy[$0] }, names: shown.map(label)))
    }

    /// Writes `html()` to `url` atomically; errors name the file.
    public func write(to url: URL) throws {
        do { try Data(html().utf8).write(to: url, options: .atomic) } catch {
            throw ClassifierError("\(url.path): cannot write the report (\(error.localizedDescription))")
        }
    }

    /// The HTML page around `body` (inline CSS; `title` is escaped here).
    static func page(title: String, body: [String]) -> String {
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(htmlEscape(title))</title>
        <style>
        body { font-family: sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
        h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
        .headline { font-size: 1.4em; }
        table.kv th { text-align: left; padding-right: 1em; font-weight: normal; color: #555; }
        table.kv td { font-family: monospace; }
        table.runs { border-collapse: collapse; }
        table.runs th, table.runs td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; vertical-align: bottom; white-space: nowrap; }
        table.runs th { white-space: normal; }
        table.runs th:first-child, table.runs td:first-child, table.runs .text { text-align: left; white-space: normal; min-width: 7em; }
        p.note { color: #555; }
        div.chart svg { max-width: 100%; height: auto; }
        p.warning { color: #8a4b00; background: #fff4e0; border-left: 4px solid #f0a030; padding: 4px 8px; }
        </style>
        </head>
        <body>
        \(body.joined(separator: "\n"))
        </body>
        </html>

        """
    }

    func section(_ title: String, _ note: String?, _ svg: String) -> String { Report.section(title, note, svg) }

    static func section(_ title: String, _ note: String?, _ svg: String) -> String {
        "<h2>\(htmlEscape(title))</h2>\n" + (note.map { "<p class=\"note\">\(htmlEscape($0))</p>\n" } ?? "") + "<div class=\"chart\">\(svg)</div>"
    }

    /// Where tau came from, or that the run is uncalibrated.
    func calibrationNote() -> String {
        if let file = run.calibrationFile { return "Probabilities calibrated: tau \(run.tau) from \(file)." }
        if run.isCalibrated { return "tau \(run.tau), given directly (no calibration file)." }
        return "Uncalibrated (tau 1): the probabilities are nearly uniform; fit tau with diffclass calibrate and evaluate with --calibration."
    }

    func headline() -> String {
        let speed = run.setting("replay_of") != nil ? "replayed from a recorded run (no U-Net time)"
            : String(format: "%.3f images/s", run.imagesPerSecond)
        let top5 = run.hasTop5 ? String(format: ", top-5 <strong>%.2f%% ± %.2f</strong>", 100 * run.top5Accuracy, 100 * run.top5Stderr) : ""
        let line = String(format: "accuracy <strong>%.2f%% ± %.2f</strong>%@ (n = %d), %.0f U-Net calls/image, %@",
                          100 * run.accuracy, 100 * run.accuracyStderr, top5, run.n, run.meanCalls, speed)
        let method = run.methodDescription
        let calibration = run.setting("tau") == nil ? "" : "\n<p class=\"\(run.isCalibrated ? "note" : "warning")\">\(htmlEscape(calibrationNote()))</p>"
        return "<p class=\"headline\">\(line)</p>" + (method.isEmpty ? "" : "\n<p>method: \(htmlEscape(method))</p>") + calibration
    }

    /// Accuracy (± standard error) against mean calls per image (log scale), one point per run.
    func callsChart() -> String {
        let runs = [run] + compare.filter { !$0.records.isEmpty }
        let series = runs.enumerated().map { i, r in
            ChartSeries(name: "\(r.name)\(r.methodDescription.isEmpty ? "" : " (\(r.methodDescription))")",
                        color: Palette.series[i % Palette.series.count],
                        points: [(r.meanCalls, r.accuracy, r.accuracyStderr)], line: false,
                        labels: [String(format: "%@: %.0f calls/image, %.2f%% ± %.2f (n = %d)", r.name, r.meanCalls,
                                        100 * r.accuracy, 100 * r.accuracyStderr, r.n)])
        }
        var all = series
        if runs.count >= 2 {
            let sorted = runs.sorted { $0.meanCalls < $1.meanCalls }
            all.insert(ChartSeries(name: "runs by cost", color: "#bbb", points: sorted.map { ($0.meanCalls, $0.accuracy, 0) }), at: 0)
        }
        let top5 = runs.contains { $0.hasTop5 }
        let rows = runs.map { r in
            String(format: "<tr><td>%@</td><td>%@</td><td>%d</td><td>%.0f</td><td>%.2f%% ± %.2f</td>", htmlEscape(r.name),
                   htmlEscape(r.methodDescription), r.n, r.meanCalls, 100 * r.accuracy, 100 * r.accuracyStderr)
                + (top5 ? String(format: "<td>%.2f%% ± %.2f</td>", 100 * r.top5Accuracy, 100 * r.top5Stderr) : "") + "</tr>"
        }
        let table = "<table class=\"runs\"><tr><th>run</th><th>method</th><th>n</th><th>calls/image</th><th>accuracy</th>"
            + (top5 ? "<th>top-5</th>" : "") + "</tr>\n"
            + rows.joined(separator: "\n") + "\n</table>"
        // The y axis spans the runs (± 2 s.e., rounded out to 5 points) so that close runs can be told apart.
        let low = runs.map { $0.accuracy - 2 * $0.accuracyStderr }.min() ?? 0, high = runs.map { $0.accuracy + 2 * $0.accuracyStderr }.max() ?? 1
        let yLower = Swift.max(0, (low * 20).rounded(.down) / 20), yUpper = Swift.min(1, Swift.max(yLower + 0.05, (high * 20).rounded(.up) / 20))
        // Few runs: ticks at their call counts, so a single run's point reads off the axis.
        let values = Array(Set(runs.map(\.meanCalls))).sorted()
        let ticks: [Double]? = values.count <= 4 && values.allSatisfy { $0 > 0 } ? values : nil
        return section("Accuracy against U-Net calls", "Mean U-Net calls per image (log scale); error bars: ± one standard error.",
                       Charts.xy(all, xLabel: "U-Net calls per image", yLabel: "accuracy", logX: true, yLower: yLower, yUpper: yUpper,
                                 xTicks: ticks))
            + "\n" + table + coverageWarning(runs)
    }

    /// A warning when the runs compared do not hold the same images (their accuracies are then
    /// not paired), empty otherwise.
    func coverageWarning(_ runs: [RunData]) -> String {
        guard runs.count >= 2 else { return "" }
        let sets = runs.map { Set($0.records.map(\.index)) }
        guard Set(sets).count > 1 else { return "" }
        let common = sets.dropFirst().reduce(sets[0]) { $0.intersection($1) }.count
        let counts = runs.map { "\($0.name) \($0.n)" }.joined(separator: ", ")
        return "\n<p class=\"warning\">\(htmlEscape("The runs cover different images (\(counts); \(common) in all of them): their accuracies are not on the same images and differences between them are not paired."))</p>"
    }

    /// The two timestep findings of `analysis.json`.
    func analysisSection(_ a: AnalysisResult) -> String {
        let single = ChartSeries(name: "one timestep, all classes on one shared eps", color: Palette.series[0],
                                 points: a.singleTimestep.map { (Double($0.t), $0.accuracy, $0.stderr) })
        let shared = ChartSeries(name: "shared noise (every class sees the same eps)", color: Palette.series[0],
                                 points: a.timestepCounts.map { (Double($0.count), $0.sharedAccuracy, $0.sharedStderr) })
        let independent = ChartSeries(name: "independent noise (each class its own eps)", color: Palette.series[1],
                                      points: a.timestepCounts.map { (Double($0.count), $0.independentAccuracy, $0.independentStderr) })
        let chance = ChartSeries(name: "chance", color: "#999", points: a.singleTimestep.isEmpty ? [] :
                                    [(Double(a.singleTimestep.first!.t), 1 / Double(max(a.classes, 1)), 0), (Double(a.singleTimestep.last!.t), 1 / Double(max(a.classes, 1)), 0)])
        let intro = "<h2>Timestep analysis</h2>\n<p class=\"note\">\(htmlEscape("\(a.n) images of \(a.dataset) \(a.split), seed \(a.seed), \(a.calls) U-Net calls; model \(a.model)."))</p>"
        return intro + "\n"
            + section("Accuracy from a single timestep", "Each class scored at one timestep t only; error bars: ± one standard error.",
                      Charts.xy([single, chance], xLabel: "timestep t", yLabel: "accuracy"))
            + "\n"
            + section("Accuracy against the number of timesteps", "Prefixes of a \(a.countTimesteps.count)-point grid ordered to spread; log scale.",
                      Charts.xy([shared, independent], xLabel: "timesteps per class", yLabel: "accuracy", logX: true))
    }
}
