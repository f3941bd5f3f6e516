import Foundation
import TensorEngine

/// Progress after each image.
public struct EvaluationProgress: Sendable {
    public let done: Int
    public let total: Int
    public let correct: Int
    public let meanCalls: Double
    /// Images per second in this session (resumed images not counted).
    public let imagesPerSecond: Double
    public let record: ImageRecord

    public init(done: Int, total: Int, correct: Int, meanCalls: Double, imagesPerSecond: Double, record: ImageRecord) {
        self.done = done
        self.total = total
        self.correct = correct
        self.meanCalls = meanCalls
        self.imagesPerSecond = imagesPerSecond
        self.record = record
    }

    public var accuracy: Double { done == 0 ? 0 : Double(correct) / Double(done) }

    /// Seconds left at this session's speed (nil before the first image of the session).
    public var secondsLeft: Double? { imagesPerSecond > 0 ? Double(total - done) / imagesPerSecond : nil }

    /// "37/100  37%  acc 91.89%  300 calls/image  elapsed 1:23  ETA 2:10  0.451 images/s", with a
    /// bar of `barWidth` cells in front when `barWidth` > 0 (a terminal's live line).
    public func text(elapsed: Double, barWidth: Int = 0) -> String {
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        var s = ""
        if barWidth > 0 {
            let full = Swift.min(barWidth, Int((fraction * Double(barWidth)).rounded(.down)))
            s = "[" + String(repeating: "#", count: full) + String(repeating: ".", count: barWidth - full) + "] "
        }
        s += String(format: "%d/%d  %.0f%%  acc %.2f%%  %.0f calls/image  elapsed %@  ETA %@  %.3f images/s", done, total, 100 * fraction,
                    100 * accuracy, meanCalls, Self.clock(elapsed), secondsLeft.map(Self.clock) ?? "?", imagesPerSecond)
        return s
    }

    /// Whether a log (not a terminal) gets a line now: every `total / 20` images (at least 1), the
    /// last one, and whenever a minute has passed since the previous line.
    public func isLogLine(secondsSinceLastLine: Double) -> Bool {
        done == total || done % Swift.max(1, total / 20) == 0 || secondsSinceLastLine >= 60
    }

    /// 59 -> "0:59", 3725 -> "1:02:05".
    public static func clock(_ seconds: Double) -> String {
        let s = Int(Swift.max(0, seconds).rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// `RUN/summary.json`.
public struct EvaluationSummary: Codable, Sendable {
    public var n: Int
    public var correct: Int
    public var accuracy: Double
    /// sqrt(p (1 - p) / n).
    public var accuracyStderr: Double
    /// Top-5 accuracy (the ImageNet convention: the label among an image's 5 best-ranked classes,
    /// `ImageRecord.ranking`; `accuracy` is top-1), its count and sqrt(p (1 - p) / n). 1 when
    /// there are at most 5 classes.
    public var top5Correct: Int
    public var top5Accuracy: Double
    public var top5AccuracyStderr: Double
    /// Mean over the classes present of each class's accuracy.
    public var meanPerClassAccuracy: Double
    /// Per class (null where the run has no image of that class).
    public var perClassAccuracy: [Double?]
    public var classNames: [String]
    public var meanCalls: Double
    /// n / the sum of per-image seconds.
    public var imagesPerSecond: Double
    public var totalSeconds: Double
    public var settings: EvaluationSettings
    public var seed: UInt64
    public var batchSize: Int
    public var threads: Int
    public var limit: Int?
    public var shard: String?
    /// The images of the whole run, every shard together (`RunScope.runImages`); nil in
    /// summaries written before it was recorded.
    public var runImages: Int?
    /// `eval --reuse RUN`: the run whose recorded errors were looked up, and the mean U-Net
    /// passes actually run per image (images without the bookkeeping count all their calls).
    /// nil otherwise.
    public var reusedFrom: String?
    public var meanModelCalls: Double?
    /// The calibration file tau came from (`--calibration`, or the model folder's
    /// `calibration.json`); nil when tau was given directly or the run is uncalibrated (tau 1).
    public var calibration: String?
    /// Mean -log p(label) of the recorded probabilities; nil when some image gave its label
    /// probability 0 (an infinite NLL) or there are no images.
    public var nll: Double?
    /// Expected calibration error of the recorded probabilities (15 bins,
    /// `Calibration.expectedCalibrationError`).
    public var ece: Double
    /// counts[true class][predicted class], for runs of at most `confusionLimit` classes (nil above).
    public var confusion: [[Int]]?

    /// Above this many classes `summary.json` leaves the dense confusion matrix out.
    public static let confusionLimit = 100

    public init(records: [ImageRecord], classNames: [String], settings: EvaluationSettings, batchSize: Int, threads: Int, scope: RunScope) {
        n = records.count
        correct = records.filter(\.correct).count
        accuracy = n == 0 ? 0 : Double(correct) / Double(n)
        accuracyStderr = n == 0 ? 0 : (accuracy * (1 - accuracy) / Double(n)).squareRoot()
        top5Correct = EvaluationStatistics.topCorrect(records, k: 5)
        top5Accuracy = n == 0 ? 0 : Double(top5Correct) / Double(n)
        top5AccuracyStderr = n == 0 ? 0 : (top5Accuracy * (1 - top5Accuracy) / Double(n)).squareRoot()
        perClassAccuracy = classNames.indices.map { c in
            let mine = records.filter { $0.label == c }
            return mine.isEmpty ? nil : Double(mine.filter(\.correct).count) / Double(mine.count)
        }
        let present = perClassAccuracy.compactMap { $0 }
        meanPerClassAccuracy = present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count)
        self.classNames = classNames
        meanCalls = n == 0 ? 0 : Double(records.map(\.calls).reduce(0, +)) / Double(n)
        totalSeconds = records.map(\.seconds).reduce(0, +)
        imagesPerSecond = totalSeconds > 0 ? Double(n) / totalSeconds : 0
        self.settings = settings
        seed = settings.seed
        self.batchSize = batchSize
        self.threads = threads
        limit = scope.limit
        runImages = scope.runImages
        shard = scope.shard.map { "\($0.index)/\($0.count)" }
        nll = EvaluationStatistics.negativeLogLikelihood(records)
        ece = EvaluationStatistics.expectedCalibrationError(records)
        confusion = classNames.count <= Self.confusionLimit ? EvaluationStatistics.confusion(records, classes: classNames.count) : nil
        if n > 0, records.contains(where: { $0.modelCalls != nil }) {
            meanModelCalls = Double(records.map { $0.modelCalls ?? $0.calls }.reduce(0, +)) / Double(n)
        }
    }

    /// Writes pretty JSON with snake_case keys, sorted (atomically).
    public func write(to url: URL) throws {
        try RunFiles.writeJSON(self, to: url)
    }
}

/// An evaluation run (`eval`, `replay`) into its run folder (`EvaluationFolder`, see `RunFolder`
/// for opening, resuming and merging): one `ImageRecord` line per finished image, then the
/// summary.
///
/// Per-image results depend only on the settings, the image and its index, so a resumed run, or
/// shards merged, give the same lines as one full run (up to timing).
public final class EvaluationRun {
    public let folder: EvaluationFolder
    public let settings: EvaluationSettings
    /// Held while this run exists: no other process writes the folder meanwhile.
    public let lock: RunFolderLock
    public var directory: URL { folder.directory }
    public var settingsURL: URL { folder.settingsURL }
    public var resultsURL: URL { folder.resultsURL }
    public var summaryURL: URL { folder.summaryURL }
    /// Written into the summary (`EvaluationSummary.reusedFrom`).
    public var reusedFrom: String?
    /// Written into the summary (`EvaluationSummary.calibration`).
    public var calibration: String?

    /// Opens (creating if needed) `directory`, checking or writing `settings.json`.
    public init(directory: URL, settings: EvaluationSettings) throws {
        folder = EvaluationFolder(directory)
        self.settings = settings
        lock = try folder.open(settings: settings)
    }

    /// The records already in `results.jsonl`, by index; cuts off an unterminated last line.
    public func completedRecords() throws -> [Int: ImageRecord] { try folder.completedRecords() }

    /// The complete lines of a `results.jsonl` (an unterminated last line is ignored, not
    /// removed), each with its bytes (newline included), in file order.
    public static func parseResults(_ data: Data, path: String) throws -> [(record: ImageRecord, line: Data)] {
        try EvaluationFolder.parseResults(data, path: path)
    }

    /// Classifies every index of `indices` not yet done, appending a line per image, then writes
    /// and returns the summary over `indices`. `timed` false records 0 seconds (replays). With
    /// `paths` (image-folder datasets, by index), each line also holds the image's path and the
    /// class names of its label and prediction. With a `batcher` (the classifier's,
    /// `Classifier.batcher`), its images in flight are classified at once with shared U-Net calls
    /// (same lines; each image's seconds are its share of the work).
    public func run(indices: [Int], labels: [Int], classNames: [String], paths: [String]? = nil, scope: RunScope, batchSize: Int,
                    image: (Int) throws -> Tensor, classify: (Tensor, Int) throws -> Classification, timed: Bool = true,
                    batcher: CrossImageBatcher? = nil,
                    progress: (EvaluationProgress) -> Void = { _ in }) throws -> EvaluationSummary {
        let before = try folder.completedRecords()
        var count = indices.filter { before[$0] != nil }.count
        var correct = indices.filter { before[$0]?.correct == true }.count
        var calls = indices.compactMap { before[$0]?.calls }.reduce(0, +)
        let start = Date()
        var sessionImages = 0
        let classes = settings.classes
        let records = try folder.complete(indices, batcher: batcher, check: { r in
            Self.problem(with: r, labels: labels, classes: classes, paths: paths)
        }, produce: { i in
            let t0 = Date()
            let c = try classify(try image(i), i)
            let seconds = batcher?.currentJobSeconds() ?? Date().timeIntervalSince(t0)
            var record = ImageRecord(index: i, label: labels[i], classification: c, seconds: timed ? seconds : 0,
                                     saveErrors: settings.saveErrors)
            if let paths {
                record.path = paths[i]
                record.labelName = classNames.indices.contains(record.label) ? classNames[record.label] : nil
                record.predictionName = classNames.indices.contains(record.prediction) ? classNames[record.prediction] : nil
            }
            return record
        }, finished: { record, _ in
            sessionImages += 1
            count += 1
            correct += record.correct ? 1 : 0
            calls += record.calls
            let elapsed = Date().timeIntervalSince(start)
            progress(EvaluationProgress(done: count, total: indices.count, correct: correct, meanCalls: Double(calls) / Double(count),
                                        imagesPerSecond: elapsed > 0 ? Double(sessionImages) / elapsed : 0, record: record))
        })
        var summary = EvaluationSummary(records: records, classNames: classNames, settings: settings, batchSize: batchSize,
                                        threads: Engine.threads, scope: scope)
        summary.reusedFrom = reusedFrom
        summary.calibration = calibration
        try folder.writeSummary(summary)
        return summary
    }
}

extension EvaluationRun {
    /// What is wrong with a finished record for a run over `labels` (by dataset index) with
    /// `classes` classes and, for image folders, `paths`; nil when it fits.
    static func problem(with r: ImageRecord, labels: [Int], classes: Int, paths: [String]?) -> String? {
        guard labels.indices.contains(r.index) else { return "has index \(r.index), outside the data's 0..<\(labels.count)" }
        guard r.label == labels[r.index] else { return "has label \(r.label), but image \(r.index) of the data has label \(labels[r.index])" }
        guard r.meanErrors.count == classes else { return "has errors for \(r.meanErrors.count) classes, the run has \(classes)" }
        guard (0..<classes).contains(r.prediction) else { return "has prediction \(r.prediction), outside the run's 0..<\(classes)" }
        if let paths, let path = r.path, path != paths[r.index] { return "is of \(path), but image \(r.index) of the data is \(paths[r.index])" }
        return nil
    }
}

/// The statistics of a run's records that its summary and its report share.
public enum EvaluationStatistics {
    /// Mean over records of -log p(label) (records without probabilities skipped); nil when a
    /// label's probability is 0 (infinite) or no record has probabilities.
    public static func negativeLogLikelihood(_ records: [ImageRecord]) -> Double? {
        let usable = records.filter { !$0.probabilities.isEmpty && $0.label < $0.probabilities.count }
        guard !usable.isEmpty else { return nil }
        let total = usable.map { -log($0.probabilities[$0.label]) }.reduce(0, +)
        return total.isFinite ? total / Double(usable.count) : nil
    }

    /// ECE (`bins` bins) of the recorded probabilities (records without them skipped).
    public static func expectedCalibrationError(_ records: [ImageRecord], bins: Int = 15) -> Double {
        let usable = records.filter { !$0.probabilities.isEmpty }
        return Calibration.expectedCalibrationError(probabilities: usable.map(\.probabilities), labels: usable.map(\.label), bins: bins)
    }

    /// How many records have their label among their `k` best-ranked classes (`ImageRecord.isInTop`).
    public static func topCorrect(_ records: [ImageRecord], k: Int) -> Int { records.filter { $0.isInTop(k) }.count }

    /// The most frequent confusions (label != prediction): (label, prediction, count), most
    /// frequent first (ties: by label, then prediction), at most `limit`. What a report shows
    /// instead of a confusion matrix too large to read.
    public static func topConfusions(_ records: [ImageRecord], limit: Int) -> [(label: Int, prediction: Int, count: Int)] {
        var counts: [Pair: Int] = [:]
        for r in records where r.label != r.prediction { counts[Pair(label: r.label, prediction: r.prediction), default: 0] += 1 }
        return counts.map { (label: $0.key.label, prediction: $0.key.prediction, count: $0.value) }
            .sorted { ($1.count, $0.label, $0.prediction) < ($0.count, $1.label, $1.prediction) }
            .prefix(Swift.max(limit, 0)).map { $0 }
    }

    private struct Pair: Hashable { let label: Int, prediction: Int }

    /// counts[true][predicted] over classes 0..<classes (records outside left out).
    public static func confusion(_ records: [ImageRecord], classes: Int) -> [[Int]] {
        var m = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        for r in records where r.label >= 0 && r.label < classes && r.prediction >= 0 && r.prediction < classes { m[r.label][r.prediction] += 1 }
        return m
    }
}
