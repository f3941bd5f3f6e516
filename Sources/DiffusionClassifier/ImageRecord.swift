import Foundation
import NeuralNetworks

/// One line of `RUN/results.jsonl`: one image's outcome.
public struct ImageRecord: Codable, Equatable, Sendable {
    public var index: Int
    public var label: Int
    public var prediction: Int
    /// Per class: mean weighted error over the timesteps it saw (null if never scored).
    public var meanErrors: [Double?]
    /// Per class: mean error on the prediction's probes, estimated from the probes it shares with
    /// the prediction (`Classification.pairedErrors`; equal to `meanErrors` on fixed timesteps).
    /// What the probabilities and calibration use. Absent in runs written before it existed.
    public var pairedErrors: [Double?]?
    public var probabilities: [Double]
    /// Per class: how many probes (timestep and noise draw) it was scored on, i.e. how many
    /// errors its mean error averages. Equal for every class on fixed timesteps; with an
    /// adaptive method a class eliminated early has fewer (the staged schedule's first stage
    /// count, or the sequential rules' count when the class was dropped).
    public var scores: [Int]
    /// The classes still in the running when the strategy stopped, when there were several but
    /// not all of them (a sequential rule stopped by its probe limit, a last stage keeping
    /// several). Absent otherwise, where it is the prediction alone or every class (fixed
    /// timesteps), which give the same `ranking`; absent in runs written before it existed.
    public var survivors: [Int]?
    /// U-Net forward passes for this image.
    public var calls: Int
    public var seconds: Double
    /// With `eval --reuse`: the U-Net passes actually run for this image (`calls` minus the
    /// errors taken from the reused run). Absent otherwise.
    public var modelCalls: Int?
    /// With `--save-errors`: the timestep of each probe, in the order they were created, and per
    /// class the weighted error on each probe (null where the class was not scored). Enough to
    /// replay any strategy over these probes (`RecordedScorer`). Absent otherwise.
    public var probeTimesteps: [Int]?
    public var probeErrors: [[Double?]]?
    /// Image-folder datasets: the image's file (relative to the folder) and the class names of
    /// its label and of the prediction. Absent for IDX datasets and runs written before.
    public var path: String?
    public var labelName: String?
    public var predictionName: String?

    public init(index: Int, label: Int, classification c: Classification, seconds: Double, saveErrors: Bool = false) {
        self.index = index
        self.label = label
        prediction = c.prediction
        meanErrors = c.meanErrors
        probabilities = c.probabilities
        pairedErrors = c.pairedErrors.isEmpty ? nil : c.pairedErrors
        scores = c.scoreCounts
        survivors = c.survivors.count > 1 && c.survivors.count < c.scoreCounts.count ? c.survivors : nil
        calls = c.calls
        self.seconds = seconds
        modelCalls = c.modelCalls
        if saveErrors {
            probeTimesteps = c.probeTimesteps
            probeErrors = c.probeErrors
        }
    }

    public var correct: Bool { prediction == label }

    /// Every class, best first (`ClassRanking`, from `scores`, `mean_errors` and `survivors`):
    /// what the classification's `ranking` was.
    public var ranking: [Int] {
        ClassRanking.rank(prediction: prediction, survivors: survivors ?? [prediction], scoreCounts: scores, meanErrors: meanErrors)
    }

    /// Whether the label is among the `k` best classes (top-k accuracy; `k` 1 is `correct`).
    public func isInTop(_ k: Int) -> Bool { k == 1 ? correct : ranking.prefix(k).contains(label) }

    /// The errors the probabilities come from: `pairedErrors`, or `meanErrors` for older runs.
    public var comparableErrors: [Double?] { pairedErrors ?? meanErrors }

    /// The record without its timing and reuse bookkeeping (`seconds`, `modelCalls`), for
    /// comparing runs.
    public var withoutTiming: ImageRecord { var r = self; r.seconds = 0; r.modelCalls = nil; return r }
}

/// Which dataset indices a run covers: the first `limit` images (all if nil), then those with
/// i % count == index (`--shard index/count`), as the public code's `idxs[worker_idx::n_workers]`.
public struct RunScope: Equatable, Sendable {
    public var limit: Int?
    public var shard: (index: Int, count: Int)?
    /// The images of the whole run, every shard together: min(limit, dataset size); nil when
    /// the dataset size was not given. Recorded in summaries so `merge` can tell an unfinished
    /// or forgotten shard.
    public var runImages: Int?

    public init(limit: Int? = nil, shard: (index: Int, count: Int)? = nil, datasetCount: Int? = nil) {
        self.limit = limit
        self.shard = shard
        runImages = datasetCount.map { Swift.min(limit ?? $0, $0) }
    }

    public static func == (a: RunScope, b: RunScope) -> Bool {
        a.limit == b.limit && a.shard?.index == b.shard?.index && a.shard?.count == b.shard?.count
    }

    /// Parses "I/N" with 0 <= I < N.
    public static func parseShard(_ text: String) throws -> (index: Int, count: Int) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ClassifierError(.shard, "'\(text)' is not I/N with 0 <= I < N")
        }
        return (i, n)
    }

    public func indices(datasetCount: Int) -> [Int] {
        let n = Swift.min(limit ?? datasetCount, datasetCount)
        guard let shard else { return Array(0..<n) }
        return (0..<n).filter { $0 % shard.count == shard.index }
    }
}
