import Foundation
import NeuralNetworks

/// A `ProbeScorer` whose errors come from a recorded run (`eval --save-errors`): the error of
/// (class, t) is the recorded one at timestep t. A run recorded with `--noise-by timestep` gives
/// every (class, t) the error an online run with `--noise-by timestep` would compute, so replaying
/// a strategy whose timesteps lie in the recorded set reproduces that online run exactly
/// (predictions, probabilities and calls; tested), at no U-Net cost. `calls` counts the forward
/// passes the strategy would have spent.
public final class RecordedScorer: ProbeScorer {
    public let imageIndex: Int
    private let table: [[Double?]]
    private let column: [Int: Int]

    /// `timesteps`: the schedule's T. Recorded errors are already weighted, so the scorer's
    /// weights are 1.
    public init(record: ImageRecord, timesteps: Int) throws {
        guard let ts = record.probeTimesteps, let table = record.probeErrors else {
            throw ClassifierError("image \(record.index): no per-probe errors in the record (recorded without \(Setting.saveErrors))")
        }
        guard table.count == record.meanErrors.count, table.allSatisfy({ $0.count == ts.count }) else {
            throw ClassifierError("image \(record.index): probe_errors is not classes x probes (\(table.count) rows, \(ts.count) probes)")
        }
        var column: [Int: Int] = [:]
        for (j, t) in ts.enumerated() {
            guard t >= 0, t < timesteps else { throw ClassifierError("image \(record.index): probe timestep \(t) outside 0..<\(timesteps)") }
            guard column[t] == nil else {
                throw ClassifierError("image \(record.index): timestep \(t) was probed twice; a replay needs one error per (class, timestep)")
            }
            column[t] = j
        }
        imageIndex = record.index
        self.table = table
        self.column = column
        super.init(candidateCount: table.count, weights: [Double](repeating: 1, count: timesteps))
        noiseByTimestep = true
    }

    /// The recorded timesteps, ascending.
    public var recordedTimesteps: [Int] { column.keys.sorted() }

    public override func score(candidates: [Int], probes ids: [Int]) throws {
        guard !candidates.isEmpty, !ids.isEmpty else { return }
        checkUnseen(candidates: candidates, probes: ids)
        for c in candidates {
            for id in ids {
                let t = probes[id].timestep
                guard let j = column[t], let e = table[c][j] else {
                    throw ClassifierError("image \(imageIndex): the recorded run has no error for class \(c) at timestep \(t) "
                                          + "(a replayed strategy must use the recorded timesteps: \(Replay.describe(recordedTimesteps)))")
                }
                record(candidate: c, probe: id, error: e)
            }
        }
    }
}

/// One image's recorded errors (`eval --save-errors --noise-by timestep`), handed to a new run
/// of the same image on the same noise (`eval --reuse RUN`, `ImageScorer.knownErrors`): a
/// (class, t) the record has is looked up instead of computed, so only what the new strategy
/// needs beyond the record runs the U-Net. Records hold weighted errors; `error` divides by the
/// new run's w(t), which the run checks is the recorded weighting: exact for uniform weighting
/// (w = 1), within a rounding of it otherwise. Where w(t) = 0 the raw error is not recoverable
/// and is computed again.
public struct RecordedErrors: Sendable {
    public let imageIndex: Int
    private let table: [[Double?]]
    private let column: [Int: Int]
    private let weights: [Double]

    public init(record: ImageRecord, weights: [Double]) throws {
        guard let ts = record.probeTimesteps, let table = record.probeErrors else {
            throw ClassifierError("image \(record.index): no per-probe errors in the record (recorded without \(Setting.saveErrors))")
        }
        guard table.allSatisfy({ $0.count == ts.count }) else {
            throw ClassifierError("image \(record.index): probe_errors rows do not match its \(ts.count) probe_timesteps")
        }
        var column: [Int: Int] = [:]
        for (j, t) in ts.enumerated() where t >= 0 && t < weights.count && column[t] == nil { column[t] = j }
        imageIndex = record.index
        self.table = table
        self.column = column
        self.weights = weights
    }

    /// The raw error of class `candidate` at timestep `t`, nil when not recorded.
    public func error(candidate: Int, timestep t: Int) -> Double? {
        guard candidate < table.count, let j = column[t], let e = table[candidate][j], weights[t] != 0 else { return nil }
        return weights[t] == 1 ? e : e / weights[t]
    }
}

extension RecordedErrors {
    /// The errors the evaluation folder `source` recorded for the images of a new run with
    /// `target` settings (`Classifier.reusedErrors`), after checking that they are its errors
    /// (`Replay.checkReuse`) and that each reused image has the new run's label. `weights`: the
    /// new run's w(t); `labels`: its label of each dataset index.
    public static func load(from source: URL, for target: EvaluationSettings, weights: [Double], indices: [Int],
                            labels: [Int]) throws -> [Int: RecordedErrors] {
        let folder = EvaluationFolder(source)
        try Replay.checkReuse(source: try folder.readSettings(), target: target, sourcePath: source.path)
        let records = try folder.readRecords().records
        var found: [Int: RecordedErrors] = [:]
        for i in indices {
            guard let r = records[i] else { continue }
            guard r.label == labels[i] else {
                throw ClassifierError(.reuse, "\(source.path) has label \(r.label) for image \(i), the dataset says \(labels[i])")
            }
            found[i] = try RecordedErrors(record: r, weights: weights)
        }
        return found
    }
}

/// Replays strategies over a recorded run (`diffclass replay`): the settings a replay may use, and
/// one image's classification.
public enum Replay {
    /// Checks that `source` can be replayed with `target` (same model, data, loss, weighting, seed;
    /// recorded with saved errors and noise numbered by timestep, no noise file). Errors name the
    /// parameter.
    public static func check(source: EvaluationSettings, target: EvaluationSettings, sourcePath: String) throws {
        guard source.saveErrors else {
            throw ClassifierError("\(sourcePath): recorded without \(Setting.saveErrors); nothing to replay")
        }
        guard source.noiseNumbering == .timestep, source.noiseFile == nil else {
            throw ClassifierError("\(sourcePath): recorded without \(Setting.noiseBy) timestep; its errors depend on the probe order, so a replay would not be exact")
        }
        guard target.loss == source.loss else { throw ClassifierError(.loss, "the recorded run used \(source.loss.rawValue)") }
        guard target.weighting == source.weighting else { throw ClassifierError(.weighting, "the recorded run used \(source.weighting.name)") }
        guard target.seed == source.seed else { throw ClassifierError(.seed, "the recorded run used \(source.seed)") }
        guard target.noiseFile == nil else { throw ClassifierError(.noise, "a replay uses the recorded run's noise") }
    }

    /// Checks that `source`'s errors can be reused by a new run with `target` settings
    /// (`RecordedErrors`): what `check` asks, plus the same model, data, classes and weight
    /// storage, and noise numbered by timestep in the new run. Errors name the parameter.
    public static func checkReuse(source: EvaluationSettings, target: EvaluationSettings, sourcePath: String) throws {
        try check(source: source, target: target, sourcePath: sourcePath)
        guard target.noiseNumbering == .timestep else {
            throw ClassifierError(.reuse, "needs \(Setting.noiseBy) timestep (the recorded errors are on eps_t, drawn by timestep)")
        }
        let same: [(ErrorText, Bool)] = [
            ("\(Setting.model)", target.model == source.model), ("\(Setting.dataset)", target.dataset == source.dataset),
            ("\(Setting.split)", target.split == source.split), ("classes", target.classes == source.classes),
            ("the schedule", target.numTrainTimesteps == source.numTrainTimesteps && target.predictionType == source.predictionType),
            ("\(Setting.weightsDtype)", target.weightStorage == source.weightStorage),
            ("prompts", target.prompts == source.prompts && target.imageSize == source.imageSize),
        ]
        if let (what, _) = same.first(where: { !$0.1 }) {
            throw ClassifierError(.reuse, "\(sourcePath) was recorded with another \(what); its errors are not this run's")
        }
    }

    /// One image: `strategy` run on the record's errors, as `Classifier` would (seed and image
    /// index give the same timestep order).
    public static func classify(_ record: ImageRecord, strategy: ClassificationStrategy, range: Range<Int>, timesteps: Int,
                                seed: UInt64, tau: Double) throws -> Classification {
        let scorer = try RecordedScorer(record: record, timesteps: timesteps)
        return try Classifier.run(strategy, on: scorer, range: range, seed: seed, imageIndex: record.index, tau: tau)
    }

    /// "10, 30, ..., 990 (50 timesteps)".
    static func describe(_ ts: [Int]) -> String {
        ts.count <= 6 ? ts.map(String.init).joined(separator: ", ")
            : "\(ts[0]), \(ts[1]), ..., \(ts[ts.count - 1]) (\(ts.count) timesteps)"
    }
}
