import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// The settings and inputs a robustness run names in its errors (see `Setting`).
extension Setting {
    public static let norm = Setting("norm")
    /// The perturbation budget (a number or a fraction like 8/255).
    public static let epsilon = Setting("eps")
    public static let attacks = Setting("attacks")
    public static let iterations = Setting("iterations")
    public static let squareQueries = Setting("square_queries")
    public static let eotDraws = Setting("eot_draws")
}

/// The norm of a perturbation ball.
public enum PerturbationNorm: String, Codable, CaseIterable, Sendable {
    case linf, l2

    /// "linf" or "l2"; errors name `Setting.norm`.
    public init(parsing text: String) throws {
        guard let n = PerturbationNorm(rawValue: text) else { throw ClassifierError(.norm, "'\(text)' is not linf or l2") }
        self = n
    }
}

/// The attacks of a robustness run, by the names recorded in `settings.json` and `results.jsonl`.
public enum AttackKind: String, Codable, CaseIterable, Sendable {
    case apgdCE = "apgd-ce", apgdT = "apgd-t", apgdDLR = "apgd-dlr", pgd, square

    /// The default sequence (AutoAttack's gradient attacks).
    public static let defaultSequence: [AttackKind] = [.apgdCE, .apgdT]

    /// The fewest classes the attack works with (its loss compares the true class with others).
    public var minimumClasses: Int {
        switch self {
        case .apgdT: return 4
        case .apgdDLR: return 3
        case .apgdCE, .pgd, .square: return 2
        }
    }

    /// "apgd-ce,apgd-t": names separated by commas, in order; errors name `Setting.attacks`.
    public static func list(parsing text: String) throws -> [AttackKind] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty else { throw ClassifierError(.attacks, "empty list") }
        return try names.map { name in
            guard let a = AttackKind(rawValue: name) else {
                throw ClassifierError(.attacks, "unknown attack '\(name)' (\(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return a
        }
    }
}

/// What decides a robustness run's results (`RUN/settings.json`); a rerun must match it to resume.
///
/// The JSON is the format of robustness run folders: snake_case keys, sorted; the number of
/// grid timesteps as `timesteps`, the LM options as their canonical text (`lm`, absent for the
/// plain diffusion classifier); `prompts`, `image_size` and `weights_dtype` only for Stable
/// Diffusion runs, `sigmas` and `sigma_density` only for noise-level grids (EDM models), `noise`
/// only with a noise file (absent otherwise, so older folders resume unchanged).
public struct RobustnessSettings: Equatable, Sendable, RunSettings {
    public var model: String
    public var dataset: String
    public var split: String
    public var norm: PerturbationNorm
    /// Epsilon as given ("8/255") and its value.
    public var epsText: String
    public var epsilon: Double
    /// In the order they run.
    public var attacks: [AttackKind]
    public var iterations: Int
    public var squareQueries: Int
    public var eotDraws: Int
    /// The classifier's timesteps: this many on the official evenly spaced grid.
    public var timestepCount: Int
    /// RDC's likelihood maximization, nil for the plain diffusion classifier.
    public var lm: LikelihoodMaximization?
    public var seed: UInt64
    /// Zero-shot Stable Diffusion runs: the prompt of each class and the image size.
    public var prompts: [String]? = nil
    public var imageSize: Int? = nil
    public var weightStorage: WeightStorage = .float32
    /// The dtype the run's matrix products compute in: `Engine.computeDType` when the settings are
    /// made (recorded because bf16 products change results; absent from settings.json for fp32).
    public var computeDType: ComputeDType = Engine.computeDType
    /// A continuous-noise-level model (EDM): the classifier scores every level of this grid with
    /// RDC's weight of `sigmaDensity` (`TimestepWeighting.rdc`) instead of `timestepCount` grid
    /// timesteps with uniform weights; nil for DDPM-timestep models.
    public var sigmas: SigmaGrid? = nil
    public var sigmaDensity: SigmaDensity = .paper
    /// A safetensors noise file (`FileNoise`: level or timestep j uses eps[j]) instead of seeded noise.
    public var noiseFile: String? = nil

    public static let defaultIterations = 100, defaultSquareQueries = 5000, defaultEOTDraws = 1, defaultTimestepCount = 10

    public init(model: String, dataset: String, split: String, norm: PerturbationNorm, epsText: String,
                attacks: [AttackKind] = AttackKind.defaultSequence, iterations: Int = defaultIterations,
                squareQueries: Int = defaultSquareQueries, eotDraws: Int = defaultEOTDraws, timestepCount: Int = defaultTimestepCount,
                lm: LikelihoodMaximization? = nil, seed: UInt64 = 0) throws {
        self.model = model; self.dataset = dataset; self.split = split; self.norm = norm
        self.epsText = epsText
        epsilon = try Self.parseEpsilon(epsText)
        guard !attacks.isEmpty else { throw ClassifierError(.attacks, "empty list") }
        if norm == .l2, attacks.contains(.square) { throw ClassifierError(.attacks, "square is l_inf only (drop it for \(Setting.norm) l2)") }
        guard iterations >= 1 else { throw ClassifierError(.iterations, "must be at least 1") }
        guard squareQueries >= 1 else { throw ClassifierError(.squareQueries, "must be at least 1") }
        guard eotDraws >= 1 else { throw ClassifierError(.eotDraws, "must be at least 1") }
        guard timestepCount >= 1 else { throw ClassifierError(.nTimesteps, "must be at least 1") }
        self.attacks = attacks; self.iterations = iterations; self.squareQueries = squareQueries
        self.eotDraws = eotDraws; self.timestepCount = timestepCount; self.seed = seed
        // Canonical LM options, so equal options written differently are equal settings.
        self.lm = try lm.map { try LikelihoodMaximization(parsing: $0.description) }
    }

    /// "0.1", "8/255": a finite number in [0, 1]; errors name `Setting.epsilon`.
    public static func parseEpsilon(_ text: String) throws -> Double {
        let p = text.split(separator: "/", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        var value: Double?
        if p.count == 2, let a = p[0], let b = p[1], b != 0 { value = a / b }
        if p.count == 1 { value = p[0] }
        guard let v = value, v.isFinite, v >= 0, v <= 1 else {
            throw ClassifierError(.epsilon, "'\(text)' is not a number or fraction (like 8/255) in [0, 1]")
        }
        return v
    }

    /// Checks the attacks against the number of classes.
    public func validate(classes: Int) throws {
        for a in attacks where classes < a.minimumClasses {
            throw ClassifierError(.attacks, "\(a.rawValue) needs at least \(a.minimumClasses) classes (got \(classes))")
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, dataset, split, norm, epsText, epsilon, attacks, iterations, squareQueries, eotDraws, timesteps, lm, seed
        case prompts, imageSize, weightsDtype, computeDtype, sigmas, sigmaDensity, noise
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(model: try c.decode(String.self, forKey: .model), dataset: try c.decode(String.self, forKey: .dataset),
                      split: try c.decode(String.self, forKey: .split), norm: try c.decode(PerturbationNorm.self, forKey: .norm),
                      epsText: try c.decode(String.self, forKey: .epsText), attacks: try c.decode([AttackKind].self, forKey: .attacks),
                      iterations: try c.decode(Int.self, forKey: .iterations), squareQueries: try c.decode(Int.self, forKey: .squareQueries),
                      eotDraws: try c.decode(Int.self, forKey: .eotDraws), timestepCount: try c.decode(Int.self, forKey: .timesteps),
                      lm: try c.decodeIfPresent(String.self, forKey: .lm).map { try LikelihoodMaximization(parsing: $0) },
                      seed: try c.decode(UInt64.self, forKey: .seed))
        epsilon = try c.decode(Double.self, forKey: .epsilon)
        prompts = try c.decodeIfPresent([String].self, forKey: .prompts)
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize)
        if let w = try c.decodeIfPresent(String.self, forKey: .weightsDtype) {
            guard let storage = WeightStorage(rawValue: w) else { throw ClassifierError("\(Setting.weightsDtype): '\(w)' is not fp32, fp16 or bf16") }
            weightStorage = storage
        }
        computeDType = .float32
        if let d = try c.decodeIfPresent(String.self, forKey: .computeDtype) {
            guard let dtype = ComputeDType(rawValue: d) else { throw ClassifierError("\(Setting.computeDType): '\(d)' is not fp32 or bf16") }
            computeDType = dtype
        }
        sigmas = try c.decodeIfPresent(String.self, forKey: .sigmas).map { try SigmaGrid(parsing: $0) }
        sigmaDensity = try c.decodeIfPresent(SigmaDensity.self, forKey: .sigmaDensity) ?? .paper
        noiseFile = try c.decodeIfPresent(String.self, forKey: .noise)
    }

    /// The classifier's timesteps and their weighting: every level of `sigmas` with RDC's
    /// weight, or `timestepCount` timesteps of the official grid over 0..<T, uniform.
    public func timesteps(schedule: NoiseSchedule) throws -> (timesteps: [Int], weighting: TimestepWeighting) {
        guard schedule.sigmaGrid == sigmas else {
            throw ClassifierError(.sigmas, "settings are for \(sigmas.map { "the noise levels \($0)" } ?? "DDPM timesteps"); the model's schedule has \(schedule.sigmaGrid.map { "the noise levels \($0)" } ?? "DDPM timesteps")")
        }
        if let sigmas { return (Array(0..<sigmas.count), .rdc(sigmaDensity)) }
        guard timestepCount <= schedule.numTrainTimesteps else {
            throw ClassifierError(.nTimesteps, "\(timestepCount) timesteps do not fit the schedule's \(schedule.numTrainTimesteps)")
        }
        return (TimestepGrid.grid(T: schedule.numTrainTimesteps, maxN: timestepCount), .uniform)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(dataset, forKey: .dataset)
        try c.encode(split, forKey: .split)
        try c.encode(norm, forKey: .norm)
        try c.encode(epsText, forKey: .epsText)
        try c.encode(epsilon, forKey: .epsilon)
        try c.encode(attacks, forKey: .attacks)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(squareQueries, forKey: .squareQueries)
        try c.encode(eotDraws, forKey: .eotDraws)
        try c.encode(timestepCount, forKey: .timesteps)
        try c.encodeIfPresent(lm?.description, forKey: .lm)
        try c.encode(seed, forKey: .seed)
        try c.encodeIfPresent(prompts, forKey: .prompts)
        try c.encodeIfPresent(imageSize, forKey: .imageSize)
        if weightStorage != .float32 { try c.encode(weightStorage.rawValue, forKey: .weightsDtype) }
        if computeDType != .float32 { try c.encode(computeDType.rawValue, forKey: .computeDtype) }
        if let sigmas {
            try c.encode(sigmas.description, forKey: .sigmas)
            try c.encode(sigmaDensity, forKey: .sigmaDensity)
        }
        try c.encodeIfPresent(noiseFile, forKey: .noise)
    }
}

/// A robustness run's outcome for one image.
public enum Verdict: String, Codable, Sendable {
    /// Correct clean, and no attack changed the prediction.
    case robust
    /// Wrong clean (not attacked).
    case misclassified
    /// Correct clean, and an attack changed the prediction.
    case broken
}

/// One line of a robustness run's `results.jsonl` (written by the robustness run, read by merges
/// and reports).
public struct RobustRecord: Codable, Equatable, Sendable {
    public struct AttackLine: Codable, Equatable, Sendable {
        /// The attack's display name ("APGD-CE").
        public var name: String
        public var success: Bool
        public var forwardCalls: Int
        public var backwardCalls: Int
        public var queries: Int
        public init(name: String, success: Bool, forwardCalls: Int, backwardCalls: Int, queries: Int) {
            self.name = name; self.success = success; self.forwardCalls = forwardCalls; self.backwardCalls = backwardCalls
            self.queries = queries
        }
    }
    public var index: Int
    public var label: Int
    public var cleanPrediction: Int
    public var cleanCorrect: Bool
    /// The attacks that ran, in order (none when misclassified clean; stops at the first success).
    public var attacks: [AttackLine]
    public var verdict: Verdict
    public var brokenBy: AttackKind?
    /// U-Net item passes: forward plus backward, the clean evaluation included; for RDC, LM's
    /// inner forward and backward passes included.
    public var unetPasses: Int
    public var seconds: Double
    public var robust: Bool { verdict == .robust }

    public init(index: Int, label: Int, cleanPrediction: Int, cleanCorrect: Bool, attacks: [AttackLine], verdict: Verdict,
                brokenBy: AttackKind?, unetPasses: Int, seconds: Double) {
        self.index = index; self.label = label; self.cleanPrediction = cleanPrediction; self.cleanCorrect = cleanCorrect
        self.attacks = attacks; self.verdict = verdict; self.brokenBy = brokenBy; self.unetPasses = unetPasses; self.seconds = seconds
    }
}

/// `RUN/summary.json` of a robustness run.
public struct RobustSummary: Codable, Sendable {
    public var n: Int
    public var cleanAccuracy: Double
    public var cleanStderr: Double
    public var robustAccuracy: Double
    public var robustStderr: Double
    /// Images attacked (correct clean).
    public var attacked: Int
    /// Per attack name: images it broke.
    public var breaks: [String: Int]
    /// Over attacked images.
    public var meanUnetPassesPerAttacked: Double
    public var meanSecondsPerAttacked: Double
    public var totalSeconds: Double
    public var settings: RobustnessSettings
    public var seed: UInt64
    public var limit: Int?
    /// "I/N" for a sharded run, nil otherwise.
    public var shard: String?
    public var threads: Int
    /// The dataset's class names (for reports), when known.
    public var classNames: [String]?

    public init(records: [RobustRecord], settings: RobustnessSettings, limit: Int?, shard: String? = nil, threads: Int = Engine.threads,
                classNames: [String]? = nil) {
        let n = records.count
        self.n = n
        func rate(_ k: Int) -> (Double, Double) {
            guard n > 0 else { return (0, 0) }
            let p = Double(k) / Double(n)
            return (p, (p * (1 - p) / Double(n)).squareRoot())
        }
        let c = rate(records.filter(\.cleanCorrect).count), r = rate(records.filter(\.robust).count)
        cleanAccuracy = c.0; cleanStderr = c.1; robustAccuracy = r.0; robustStderr = r.1
        let att = records.filter(\.cleanCorrect)
        attacked = att.count
        var b: [String: Int] = [:]
        for a in settings.attacks { b[a.rawValue] = 0 }
        for r in records { if let a = r.brokenBy { b[a.rawValue, default: 0] += 1 } }
        breaks = b
        meanUnetPassesPerAttacked = att.isEmpty ? 0 : Double(att.map(\.unetPasses).reduce(0, +)) / Double(att.count)
        meanSecondsPerAttacked = att.isEmpty ? 0 : att.map(\.seconds).reduce(0, +) / Double(att.count)
        totalSeconds = records.map(\.seconds).reduce(0, +)
        self.settings = settings
        seed = settings.seed
        self.limit = limit
        self.shard = shard
        self.threads = threads
        self.classNames = classNames
    }

    public func write(to url: URL) throws {
        try RunFiles.writeJSON(self, to: url)
    }
}
