import DiffusionClassifier
import Foundation

/// What a report shows of one run folder: its records (`results.jsonl`), settings
/// (`settings.json`, shown as flat key/value pairs), class names (from `summary.json` when
/// present) and, when present, `analysis.json`. Statistics are recomputed from the records.
public struct RunData {
    public var directory: URL
    public var records: [ImageRecord]
    public var classNames: [String]
    /// settings.json flattened (sorted keys; nulls left out).
    public var settings: [(key: String, value: String)]
    public var analysis: AnalysisResult?
    /// From `summary.json` when present: the calibration file tau came from, and the run's
    /// limit, batch size and threads (what does not decide results, so not in settings.json).
    public var calibrationFile: String?
    public var runValues: [(key: String, value: String)] = []

    public var name: String { directory.standardizedFileURL.lastPathComponent }

    /// Reads `directory`; needs `results.jsonl` or `analysis.json`. Errors name the file.
    public static func load(_ directory: URL) throws -> RunData {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ClassifierError("\(directory.path): not a run folder")
        }
        let resultsURL = directory.appendingPathComponent("results.jsonl")
        let analysisURL = directory.appendingPathComponent("analysis.json")
        var records: [ImageRecord] = []
        if fm.fileExists(atPath: resultsURL.path) {
            let data: Data
            do { data = try Data(contentsOf: resultsURL) } catch { throw ClassifierError("\(resultsURL.path): cannot read (\(error.localizedDescription))") }
            records = try EvaluationRun.parseResults(data, path: resultsURL.path).map(\.record).sorted { $0.index < $1.index }
        }
        let analysis = fm.fileExists(atPath: analysisURL.path) ? try AnalysisResult.load(analysisURL) : nil
        guard !records.isEmpty || analysis != nil else {
            throw ClassifierError("\(directory.path): no results.jsonl records and no analysis.json to report on")
        }
        var settings: [(String, String)] = []
        var classCount: Int?
        let settingsURL = directory.appendingPathComponent("settings.json")
        if fm.fileExists(atPath: settingsURL.path) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: settingsURL)) as? [String: Any] else {
                throw ClassifierError("\(settingsURL.path): not a JSON object")
            }
            settings = object.keys.sorted().compactMap { k in describe(object[k]!).map { (k, $0) } }
            classCount = object["classes"] as? Int
        }
        var names: [String]?
        var calibrationFile: String?
        var runValues: [(String, String)] = []
        let summaryURL = directory.appendingPathComponent("summary.json")
        if let data = try? Data(contentsOf: summaryURL), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            names = object["class_names"] as? [String]
            calibrationFile = object["calibration"] as? String
            for key in ["limit", "shard", "batch_size", "threads", "reused_from"] {
                if let v = object[key], let text = describe(v) { runValues.append((key, text)) }
            }
        }
        let k = Swift.max(classCount ?? analysis?.classes ?? 0,
                          records.map { Swift.max($0.label, $0.prediction, $0.probabilities.count - 1) + 1 }.max() ?? 0)
        if names == nil || names!.count < k { names = (0..<k).map { i in names.flatMap { i < $0.count ? $0[i] : nil } ?? "class \(i)" } }
        var run = RunData(directory: directory, records: records, classNames: names!, settings: settings, analysis: analysis)
        run.calibrationFile = calibrationFile
        run.runValues = runValues
        return run
    }

    static func describe(_ v: Any) -> String? {
        switch v {
        case is NSNull: return nil
        case let a as [Any]: return a.compactMap(describe).joined(separator: ", ")
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default: return "\(v)"
        }
    }

    public var n: Int { records.count }
    public var correct: Int { records.filter(\.correct).count }
    public var accuracy: Double { n == 0 ? 0 : Double(correct) / Double(n) }
    /// sqrt(p (1 - p) / n).
    public var accuracyStderr: Double { n == 0 ? 0 : (accuracy * (1 - accuracy) / Double(n)).squareRoot() }
    /// Top-5 accuracy (the label among the 5 best-ranked classes, `ImageRecord.ranking`) and
    /// sqrt(p (1 - p) / n), as `summary.json` holds them.
    public var top5Accuracy: Double { n == 0 ? 0 : Double(EvaluationStatistics.topCorrect(records, k: 5)) / Double(n) }
    public var top5Stderr: Double { n == 0 ? 0 : (top5Accuracy * (1 - top5Accuracy) / Double(n)).squareRoot() }
    /// Whether top-5 accuracy says anything (more than 5 classes; with 5 or fewer it is 100%).
    public var hasTop5: Bool { classNames.count > 5 }
    public var meanCalls: Double { n == 0 ? 0 : Double(records.map(\.calls).reduce(0, +)) / Double(n) }
    public var imagesPerSecond: Double {
        let s = records.map(\.seconds).reduce(0, +)
        return s > 0 ? Double(n) / s : 0
    }

    /// counts[true][predicted] (as `summary.json` holds it).
    public var confusion: [[Int]] { EvaluationStatistics.confusion(records, classes: classNames.count) }

    /// Mean -log p(label) of the recorded probabilities (as `summary.json` holds it; nil when infinite).
    public var negativeLogLikelihood: Double? { EvaluationStatistics.negativeLogLikelihood(records) }

    /// tau of settings.json (1 when absent).
    public var tau: Double { setting("tau").flatMap(Double.init) ?? 1 }

    /// Whether the probabilities are calibrated: tau from a calibration file, or given other than 1.
    public var isCalibrated: Bool { calibrationFile != nil || tau != 1 }

    /// Per class accuracy (nil where the run has no image of that class).
    public var perClassAccuracy: [Double?] {
        classNames.indices.map { c in
            let mine = records.filter { $0.label == c }
            return mine.isEmpty ? nil : Double(mine.filter(\.correct).count) / Double(mine.count)
        }
    }

    /// The setting `key` of settings.json, if any.
    public func setting(_ key: String) -> String? { settings.first { $0.key == key }?.value }

    /// "staged 5:50,1:500", "fixed grid 10", ... from the settings (empty without settings.json).
    public var methodDescription: String {
        guard let m = setting("method") else { return "" }
        let cap = setting("max_probes").map { ", ≤\($0) probes" } ?? ""
        switch m {
        case "staged": return "stages \(setting("stages") ?? "")"
        case "ttest":
            return "t-test p \(setting("p_value") ?? ""), min \(setting("min_scores") ?? ""), \(setting("timesteps") ?? "") ≤\(setting("n_timesteps") ?? "")" + cap
        case "leader-gap":
            return "leader-gap Z \(setting("gap") ?? ""), min \(setting("min_scores") ?? ""), \(setting("timesteps") ?? "") ≤\(setting("n_timesteps") ?? "")" + cap
        default:
            if let n = setting("n_timesteps") { return "\(n) \(setting("timesteps") ?? "") timesteps" }
            let list = (setting("timestep_list") ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[] \n"))
            let values = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            return values.count <= 6 ? "timesteps \(values.joined(separator: ", "))"
                : "\(values.count) timesteps \(values[0]), \(values[1]), ..., \(values[values.count - 1])"
        }
    }

    /// Reliability bins as in `Calibration.expectedCalibrationError`: confidence = the largest
    /// probability, correct = its class (first on ties) is the label.
    public func reliabilityBins(_ bins: Int = 15) -> [ReliabilityBin] {
        var count = [Int](repeating: 0, count: bins), hits = [Double](repeating: 0, count: bins), conf = hits
        for r in records where !r.probabilities.isEmpty {
            let p = r.probabilities
            let top = p.indices.max { (p[$0], -$0) < (p[$1], -$1) }!
            let b = Swift.min(Swift.max(Int((p[top] * Double(bins)).rounded(.up)) - 1, 0), bins - 1)
            count[b] += 1
            hits[b] += top == r.label ? 1 : 0
            conf[b] += p[top]
        }
        var out: [ReliabilityBin] = []
        for b in 0..<bins {
            let k = Double(count[b]), m = Double(bins)
            let accuracy: Double = k == 0 ? 0 : hits[b] / k
            let confidence: Double = k == 0 ? 0 : conf[b] / k
            out.append(ReliabilityBin(lower: Double(b) / m, upper: Double(b + 1) / m, count: count[b], accuracy: accuracy, confidence: confidence))
        }
        return out
    }

    /// ECE (15 bins) of the recorded probabilities (`Calibration.expectedCalibrationError`).
    public var expectedCalibrationError: Double { EvaluationStatistics.expectedCalibrationError(records) }
}
