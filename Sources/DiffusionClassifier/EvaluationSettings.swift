import Diffusion
import Foundation

/// Everything that decides an evaluation's per-image results, as stored in `RUN/settings.json`.
/// A rerun into the same folder must have equal settings (it then resumes). What does not change
/// results (batch size, threads, `--limit`, `--shard`) is not here; it goes in `summary.json`.
public struct EvaluationSettings: Codable, Equatable, Sendable {
    public enum Method: String, Codable, Sendable { case fixed, staged, ttest, leaderGap = "leader-gap" }

    public var model: String
    public var dataset: String
    public var split: String
    public var classes: Int
    public var numTrainTimesteps: Int
    public var predictionType: String
    public var method: Method
    /// `staged`: "keep:n,keep:n" (`--stages`).
    public var stages: String?
    /// `fixed`, `ttest`, `leader-gap`: grid, uniform, stratified or explicit (`--timesteps`).
    public var timesteps: String
    /// `fixed`: the number of timesteps; `ttest`, `leader-gap`: the sampler's count (`--max-scores`).
    public var nTimesteps: Int?
    /// `explicit`: the list.
    public var timestepList: [Int]?
    /// [A, B]: timesteps come from A..<B (`--t-range A:B`).
    public var tRange: [Int]
    public var loss: ErrorLoss
    public var weighting: String
    public var tau: Double
    public var seed: UInt64
    /// `--noise FILE`, or nil for seeded per-image noise.
    public var noise: String?
    /// `ttest` and `leader-gap` only.
    public var minScores: Int?
    public var pValue: Double?
    public var testEvery: Int?
    /// Zero-shot Stable Diffusion runs: the prompt of each class (template filled with the label)
    /// and the image size before VAE encoding. nil (absent from settings.json) for
    /// class-conditional models, so their runs are unchanged.
    public var prompts: [String]? = nil
    public var imageSize: Int? = nil
    /// "timestep" (`--noise-by timestep`): the probe at timestep t uses eps_t; nil: draws in
    /// probe order (the public code's numbering). Absent from older settings.json files.
    public var noiseBy: String? = nil
    /// `--save-errors`: each results line also holds every per-probe error (true), else nil.
    public var saveErrors: Bool? = nil
    /// `leader-gap`: the rule's threshold in standard errors (`--gap`).
    public var gap: Double? = nil
    /// `ttest` and `leader-gap`: stop after this many probes (`--max-probes`); nil: no cap.
    public var maxProbes: Int? = nil
    /// `diffclass replay`: the recorded run folder whose per-probe errors this run replays.
    public var replayOf: String? = nil
    /// `--weights-dtype fp16|bf16` (16-bit weight storage); nil for Float32, so runs made before
    /// the option existed resume unchanged. Recorded because rounding F32 checkpoints changes
    /// results (F16 checkpoints give the same results in fp16 and fp32 storage).
    public var weightsDtype: String? = nil

    public init(model: String, dataset: String, split: String, classes: Int, schedule: NoiseSchedule, method: Method,
                stages: String? = nil, timesteps: String = "grid", nTimesteps: Int? = nil, timestepList: [Int]? = nil,
                tRange: [Int]? = nil, loss: ErrorLoss = .l2, weighting: String = "uniform", tau: Double = 1, seed: UInt64 = 0,
                noise: String? = nil, minScores: Int? = nil, pValue: Double? = nil, testEvery: Int? = nil) {
        self.model = model
        self.dataset = dataset
        self.split = split
        self.classes = classes
        numTrainTimesteps = schedule.timesteps
        predictionType = schedule.prediction.rawValue
        self.method = method
        self.stages = stages
        self.timesteps = timesteps
        self.nTimesteps = nTimesteps
        self.timestepList = timestepList
        self.tRange = tRange ?? [0, schedule.timesteps]
        self.loss = loss
        self.weighting = weighting
        self.tau = tau
        self.seed = seed
        self.noise = noise
        self.minScores = minScores
        self.pValue = pValue
        self.testEvery = testEvery
    }

    public var range: Range<Int> { tRange[0]..<tRange[1] }

    /// The timestep sampler of a `fixed` or `ttest` run.
    public func sampler() throws -> TimestepSampler {
        switch timesteps {
        case "explicit":
            guard let list = timestepList else { throw ClassifierError("--timesteps: explicit timesteps need a list") }
            return .explicit(list)
        case "grid", "uniform", "stratified":
            guard let n = nTimesteps else { throw ClassifierError("--n-timesteps: missing") }
            return timesteps == "grid" ? .grid(n) : timesteps == "uniform" ? .uniform(n) : .stratified(n)
        case let name where name.hasPrefix("grid:"):
            guard let base = Int(name.dropFirst(5)), base >= 1 else {
                throw ClassifierError("--timesteps: '\(name)' is not grid:B with B a positive number of grid timesteps")
            }
            guard let n = nTimesteps else { throw ClassifierError("--n-timesteps: missing") }
            return .subgrid(n, of: base)
        default:
            throw ClassifierError("--timesteps: unknown sampler '\(timesteps)' (grid, grid:B, uniform, stratified, or a list t1,t2,...)")
        }
    }

    public func strategy() throws -> ClassificationStrategy {
        switch method {
        case .fixed:
            return FixedTimesteps(sampler: try sampler())
        case .staged:
            guard timesteps == "grid" else { throw ClassifierError("--stages: staged evaluation uses the official grid; drop --timesteps \(timesteps)") }
            return try StagedElimination(parsing: stages ?? "")
        case .ttest:
            return SequentialElimination(rule: PairedTTestRule(pValue: pValue ?? 2e-3), sampler: try sampler(),
                                         minScores: minScores ?? 20, testEvery: testEvery ?? 1, maxProbes: maxProbes)
        case .leaderGap:
            return SequentialElimination(rule: LeaderGapRule(threshold: gap ?? LeaderGapRule.defaultThreshold), sampler: try sampler(),
                                         minScores: minScores ?? 2, testEvery: testEvery ?? 1, maxProbes: maxProbes)
        }
    }

    /// The classifier these settings describe, for classes 0..<classes of `model`.
    public func makeClassifier(model: ConditionalNoisePredictor, schedule: NoiseSchedule, batchSize: Int) throws -> Classifier {
        guard schedule.timesteps == numTrainTimesteps, schedule.prediction.rawValue == predictionType else {
            throw ClassifierError("settings are for T = \(numTrainTimesteps), \(predictionType); the schedule has T = \(schedule.timesteps), \(schedule.prediction.rawValue)")
        }
        guard tRange.count == 2 else { throw ClassifierError("--t-range: need A:B") }
        let noiseFile = try noise.map { try FileNoise(url: URL(fileURLWithPath: $0)) }
        return try Classifier(model: model, schedule: schedule, conditions: Array(0..<classes), strategy: try strategy(),
                              options: try classifierOptions(batchSize: batchSize), range: range, noiseFile: noiseFile)
    }

    public func classifierOptions(batchSize: Int) throws -> ClassifierOptions {
        var o = ClassifierOptions()
        o.loss = loss
        o.weighting = try TimestepWeighting(parsing: weighting)
        o.batchSize = batchSize
        o.tau = tau
        o.seed = seed
        o.noiseByTimestep = noiseBy == "timestep"
        return o
    }

    /// JSON with snake_case keys, sorted.
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public static func decode(_ data: Data) throws -> EvaluationSettings {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(EvaluationSettings.self, from: data)
    }

    /// "key: old -> new" for each setting that differs (compared as JSON values).
    public func differences(from other: EvaluationSettings) throws -> [String] {
        func dict(_ s: EvaluationSettings) throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: try s.encoded()) as? [String: Any]) ?? [:]
        }
        let a = try dict(other), b = try dict(self)
        return Set(a.keys).union(b.keys).sorted().compactMap { k in
            let x = a[k].map { "\($0)" } ?? "null", y = b[k].map { "\($0)" } ?? "null"
            return x == y ? nil : "\(k): \(x) -> \(y)"
        }
    }
}
