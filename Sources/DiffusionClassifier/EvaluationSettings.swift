import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// How the noise draws of an image are numbered (`ClassifierOptions.noiseNumbering`).
///
/// - `probe`: eps_k goes with the k-th probe created (the public code's `noise_idxs`).
/// - `timestep`: the probe at timestep t uses eps_t, so the error of (class, t) does not depend on
///   the strategy or its order: different strategies see the same noise at each t, and a
///   recorded run can be replayed (`Replay`) or reused.
public enum NoiseNumbering: String, Codable, CaseIterable, Sendable {
    case probe, timestep
}

/// Which classes are scored on which timesteps, with every parameter of the rule. The defaults of
/// each rule are defined next to it (`StagedElimination.defaultStages`, `TTestSettings`,
/// `LeaderGapSettings`).
public enum ClassificationMethod: Equatable, Sendable {
    /// Every class on the sampler's timesteps (no elimination).
    case fixed(TimestepSampler)
    /// The public code's adaptive schedule on the official grid.
    case staged([StagedElimination.Stage])
    /// Clark & Jaini's paired t-test elimination.
    case ttest(TTestSettings)
    /// Our leader-gap elimination.
    case leaderGap(LeaderGapSettings)

    /// The name recorded in `settings.json` (`method`).
    public var name: String {
        switch self {
        case .fixed: return "fixed"
        case .staged: return "staged"
        case .ttest: return "ttest"
        case .leaderGap: return "leader-gap"
        }
    }

    /// The timesteps the method draws from (the official grid of the largest stage when staged).
    public var sampler: TimestepSampler {
        switch self {
        case .fixed(let s): return s
        case .staged(let stages): return .grid(stages.map(\.samples).max() ?? 0)
        case .ttest(let t): return t.sampler
        case .leaderGap(let g): return g.sampler
        }
    }

    /// The strategy that runs the method.
    public var strategy: ClassificationStrategy {
        switch self {
        case .fixed(let s): return FixedTimesteps(sampler: s)
        case .staged(let stages): return StagedElimination(stages: stages)
        case .ttest(let t):
            return SequentialElimination(rule: PairedTTestRule(pValue: t.pValue), sampler: t.sampler, minScores: t.minScores,
                                         testEvery: t.testEvery, maxProbes: t.maxProbes)
        case .leaderGap(let g):
            return SequentialElimination(rule: LeaderGapRule(threshold: g.gap), sampler: g.sampler, minScores: g.minScores,
                                         testEvery: g.testEvery, maxProbes: g.maxProbes)
        }
    }

    /// "stages 5:50,1:500", "paired t-test, uniform timesteps", "leader-gap rule (gap 2.0), grid
    /// timesteps" or "grid timesteps".
    public var summary: String {
        switch self {
        case .staged(let stages): return "stages \(StagedElimination(stages: stages).text)"
        case .ttest(let t): return "paired t-test, \(t.sampler.name) timesteps" + (t.maxProbes.map { ", at most \($0) probes" } ?? "")
        case .leaderGap(let g):
            return "leader-gap rule (gap \(g.gap)), \(g.sampler.name) timesteps" + (g.maxProbes.map { ", at most \($0) probes" } ?? "")
        case .fixed(let s): return "\(s.name) timesteps"
        }
    }
}

/// Everything that decides an evaluation's per-image results, as stored in `RUN/settings.json`.
/// A rerun into the same folder must have equal settings (it then resumes). What does not change
/// results (batch size, threads, the limit and the shard) is not here; it goes in `summary.json`.
///
/// The JSON is the format of run folders and does not change: snake_case keys, sorted; the
/// method as `method` with its parameters in flat keys (`stages`; `timesteps` (the sampler's
/// name: grid, grid:B, uniform, stratified or explicit), `n_timesteps`, `timestep_list`;
/// `min_scores`, `p_value`, `test_every`, `gap`, `max_probes`); keys of options at their default
/// left out (`noise_by` only for `timestep`, `save_errors` only when true, `weights_dtype` only
/// for 16-bit weights, `prompts` and `image_size` only for zero-shot runs, `sigmas` only for
/// noise-level grids). Settings written
/// before a key existed read as its default, so their folders resume unchanged.
public struct EvaluationSettings: Equatable, Sendable {
    public var model: String
    public var dataset: String
    public var split: String
    public var classes: Int
    public var numTrainTimesteps: Int
    public var predictionType: PredictionType
    public var method: ClassificationMethod
    /// Timesteps come from this part of 0..<T (`t_range`).
    public var timestepRange: Range<Int>
    public var loss: ErrorLoss
    public var weighting: TimestepWeighting
    public var tau: Double
    public var seed: UInt64
    /// A safetensors noise file (`FileNoise`), or nil for seeded per-image noise (`noise`).
    public var noiseFile: String?
    public var noiseNumbering: NoiseNumbering = .probe
    /// Each results line also holds every per-probe error (for replays and reuse).
    public var saveErrors = false
    /// Zero-shot Stable Diffusion runs: the prompt of each class and the image size before VAE
    /// encoding; nil for class-conditional models.
    public var prompts: [String]? = nil
    public var imageSize: Int? = nil
    /// A replay (`diffclass replay`): the recorded run folder whose per-probe errors it replays.
    public var replayOf: String? = nil
    /// How the model keeps its large weights (recorded because rounding Float32 checkpoints to
    /// 16 bits changes results; Float16 checkpoints give the same results in either storage).
    public var weightStorage: WeightStorage = .float32
    /// The dtype the run's matrix products compute in: `Engine.computeDType` when the settings are
    /// made (recorded because bf16 products change results; absent from settings.json for fp32).
    public var computeDType: ComputeDType = Engine.computeDType
    /// A continuous-noise-level model (EDM) scored over this grid of noise levels (`sigmas`,
    /// "A:B:N"; the timesteps are the grid's levels 0..<N); nil for DDPM-timestep models.
    public var sigmas: SigmaGrid? = nil
    /// The model folder's content hash (`ModelFolderHash`, `model_hash`), so weights or configs
    /// changed in place are refused on resume instead of mixed in; nil in folders made before it
    /// was recorded (they resume as before) and where no folder was hashed.
    public var modelHash: String? = nil

    public init(model: String, dataset: String, split: String, classes: Int, schedule: NoiseSchedule, method: ClassificationMethod,
                timestepRange: Range<Int>? = nil, loss: ErrorLoss = .l2, weighting: TimestepWeighting = .uniform, tau: Double = 1,
                seed: UInt64 = 0, noiseFile: String? = nil) {
        self.model = model
        self.dataset = dataset
        self.split = split
        self.classes = classes
        numTrainTimesteps = schedule.numTrainTimesteps
        predictionType = schedule.prediction
        self.method = method
        self.timestepRange = timestepRange ?? 0..<schedule.numTrainTimesteps
        self.loss = loss
        self.weighting = weighting
        self.tau = tau
        self.seed = seed
        self.noiseFile = noiseFile
        sigmas = schedule.sigmaGrid
    }

    /// The classifier these settings describe, for classes 0..<classes of `model`.
    public func makeClassifier(model: ConditionalNoisePredictor, schedule: NoiseSchedule, batchSize: Int, imagesInFlight: Int = 1) throws -> Classifier {
        guard computeDType == Engine.computeDType else {
            throw ClassifierError(.computeDType, "the settings are for \(computeDType.rawValue) products; this process computes in \(Engine.computeDType.rawValue)")
        }
        guard schedule.numTrainTimesteps == numTrainTimesteps, schedule.prediction == predictionType else {
            throw ClassifierError("settings are for T = \(numTrainTimesteps), \(predictionType.rawValue); the schedule has T = \(schedule.numTrainTimesteps), \(schedule.prediction.rawValue)")
        }
        guard schedule.sigmaGrid == sigmas else {
            throw ClassifierError(.sigmas, "settings are for \(sigmas.map { "the noise levels \($0)" } ?? "DDPM timesteps"); the schedule has \(schedule.sigmaGrid.map { "the noise levels \($0)" } ?? "DDPM timesteps")")
        }
        let noise = try noiseFile.map { try FileNoise(url: URL(fileURLWithPath: $0)) }
        return try Classifier(model: model, schedule: schedule, conditions: Array(0..<classes), strategy: method.strategy,
                              options: classifierOptions(batchSize: batchSize, imagesInFlight: imagesInFlight), range: timestepRange, noiseFile: noise)
    }

    public func classifierOptions(batchSize: Int, imagesInFlight: Int = 1) -> ClassifierOptions {
        var o = ClassifierOptions()
        o.imagesInFlight = imagesInFlight
        o.loss = loss
        o.weighting = weighting
        o.batchSize = batchSize
        o.tau = tau
        o.seed = seed
        o.noiseNumbering = noiseNumbering
        return o
    }
}

extension EvaluationSettings: Codable {
    enum CodingKeys: String, CodingKey {
        case model, dataset, split, classes, numTrainTimesteps, predictionType, method, stages, timesteps, nTimesteps, timestepList
        case tRange, loss, weighting, tau, seed, noise, minScores, pValue, testEvery, prompts, imageSize, noiseBy, saveErrors
        case gap, maxProbes, replayOf, weightsDtype, computeDtype, sigmas, modelHash
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        dataset = try c.decode(String.self, forKey: .dataset)
        split = try c.decode(String.self, forKey: .split)
        classes = try c.decode(Int.self, forKey: .classes)
        numTrainTimesteps = try c.decode(Int.self, forKey: .numTrainTimesteps)
        predictionType = try c.decode(PredictionType.self, forKey: .predictionType)
        let range = try c.decode([Int].self, forKey: .tRange)
        guard range.count == 2, range[0] < range[1] else { throw ClassifierError("\(Setting.timestepRange): \(range) is not [A, B] with A < B") }
        timestepRange = range[0]..<range[1]
        loss = try c.decode(ErrorLoss.self, forKey: .loss)
        weighting = try TimestepWeighting(parsing: try c.decode(String.self, forKey: .weighting))
        tau = try c.decode(Double.self, forKey: .tau)
        seed = try c.decode(UInt64.self, forKey: .seed)
        noiseFile = try c.decodeIfPresent(String.self, forKey: .noise)
        noiseNumbering = try c.decodeIfPresent(NoiseNumbering.self, forKey: .noiseBy) ?? .probe
        saveErrors = try c.decodeIfPresent(Bool.self, forKey: .saveErrors) ?? false
        prompts = try c.decodeIfPresent([String].self, forKey: .prompts)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize)
        replayOf = try c.decodeIfPresent(String.self, forKey: .replayOf)
        if let w = try c.decodeIfPresent(String.self, forKey: .weightsDtype) {
            guard let storage = WeightStorage(rawValue: w) else { throw ClassifierError("\(Setting.weightsDtype): '\(w)' is not fp32, fp16 or bf16") }
            weightStorage = storage
        } else {
            weightStorage = .float32
        }

        computeDType = .float32
        if let d = try c.decodeIfPresent(String.self, forKey: .computeDtype) {
            guard let dtype = ComputeDType(rawValue: d) else { throw ClassifierError("\(Setting.computeDType): '\(d)' is not fp32 or bf16") }
            computeDType = dtype
        }
        sigmas = try c.decodeIfPresent(String.self, forKey: .sigmas).map { try SigmaGrid(parsing: $0) }
        modelHash = try c.decodeIfPresent(String.self, forKey: .modelHash)

        let methodName = try c.decode(String.self, forKey: .method)
        func sampler() throws -> TimestepSampler {
            try TimestepSampler(name: try c.decode(String.self, forKey: .timesteps), count: try c.decodeIfPresent(Int.self, forKey: .nTimesteps),
                                list: try c.decodeIfPresent([Int].self, forKey: .timestepList))
        }
        switch methodName {
        case "fixed":
            method = .fixed(try sampler())
        case "staged":
            let name = try c.decodeIfPresent(String.self, forKey: .timesteps) ?? "grid"
            guard name == "grid" else {
                throw ClassifierError("\(Setting.stages): staged evaluation uses the official grid, not \(Setting.timesteps) \(name)")
            }
            method = .staged(try StagedElimination(parsing: try c.decode(String.self, forKey: .stages)).stages)
        case "ttest":
            var t = TTestSettings(sampler: try sampler())
            t.minScores = try c.decodeIfPresent(Int.self, forKey: .minScores) ?? t.minScores
            t.pValue = try c.decodeIfPresent(Double.self, forKey: .pValue) ?? t.pValue
            t.testEvery = try c.decodeIfPresent(Int.self, forKey: .testEvery) ?? t.testEvery
            t.maxProbes = try c.decodeIfPresent(Int.self, forKey: .maxProbes)
            method = .ttest(t)
        case "leader-gap":
            var g = LeaderGapSettings(sampler: try sampler())
            g.minScores = try c.decodeIfPresent(Int.self, forKey: .minScores) ?? g.minScores
            g.gap = try c.decodeIfPresent(Double.self, forKey: .gap) ?? g.gap
            g.testEvery = try c.decodeIfPresent(Int.self, forKey: .testEvery) ?? g.testEvery
            g.maxProbes = try c.decodeIfPresent(Int.self, forKey: .maxProbes)
            method = .leaderGap(g)
        default:
            throw ClassifierError("method '\(methodName)' is not fixed, staged, ttest or leader-gap")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(dataset, forKey: .dataset)
        try c.encode(split, forKey: .split)
        try c.encode(classes, forKey: .classes)
        try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
        try c.encode(predictionType, forKey: .predictionType)
        try c.encode(method.name, forKey: .method)
        func encode(_ s: TimestepSampler) throws {
            try c.encode(s.name, forKey: .timesteps)
            try c.encodeIfPresent(s.countSetting, forKey: .nTimesteps)
            try c.encodeIfPresent(s.list, forKey: .timestepList)
        }
        switch method {
        case .fixed(let s):
            try encode(s)
        case .staged(let stages):
            try c.encode(StagedElimination(stages: stages).text, forKey: .stages)
            try c.encode("grid", forKey: .timesteps)
        case .ttest(let t):
            try encode(t.sampler)
            try c.encode(t.minScores, forKey: .minScores)
            try c.encode(t.pValue, forKey: .pValue)
            try c.encode(t.testEvery, forKey: .testEvery)
            try c.encodeIfPresent(t.maxProbes, forKey: .maxProbes)
        case .leaderGap(let g):
            try encode(g.sampler)
            try c.encode(g.minScores, forKey: .minScores)
            try c.encode(g.testEvery, forKey: .testEvery)
            try c.encode(g.gap, forKey: .gap)
            try c.encodeIfPresent(g.maxProbes, forKey: .maxProbes)
        }
        try c.encode([timestepRange.lowerBound, timestepRange.upperBound], forKey: .tRange)
        try c.encode(loss, forKey: .loss)
        try c.encode(weighting.name, forKey: .weighting)
        try c.encode(tau, forKey: .tau)
        try c.encode(seed, forKey: .seed)
        try c.encodeIfPresent(noiseFile, forKey: .noise)
        try c.encodeIfPresent(prompts, forKey: .prompts)
        try c.encodeIfPresent(imageSize, forKey: .imageSize)
        if noiseNumbering != .probe { try c.encode(noiseNumbering, forKey: .noiseBy) }
        if saveErrors { try c.encode(true, forKey: .saveErrors) }
        try c.encodeIfPresent(replayOf, forKey: .replayOf)
        if weightStorage != .float32 { try c.encode(weightStorage.rawValue, forKey: .weightsDtype) }
        if computeDType != .float32 { try c.encode(computeDType.rawValue, forKey: .computeDtype) }
        try c.encodeIfPresent(sigmas?.description, forKey: .sigmas)
        try c.encodeIfPresent(modelHash, forKey: .modelHash)
    }
}
