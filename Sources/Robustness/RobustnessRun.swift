import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// What decides a robustness run's results (`RUN/settings.json`); a rerun must match it to resume.
public struct RobustnessSettings: Codable, Equatable, Sendable, RunSettings {
    public var model: String
    public var dataset: String
    public var split: String
    public var norm: String
    /// Epsilon as given ("8/255") and its value.
    public var epsText: String
    public var epsilon: Double
    /// In order, from `RobustnessSettings.attackNames`.
    public var attacks: [String]
    public var iterations: Int
    public var squareQueries: Int
    public var eotDraws: Int
    public var timesteps: Int
    /// `LikelihoodMaximization.description` (RDC), nil for the plain diffusion classifier.
    public var lm: String?
    public var seed: UInt64

    public static let attackNames = ["apgd-ce", "apgd-t", "apgd-dlr", "pgd", "square"]

    public init(model: String, dataset: String, split: String, norm: String, epsText: String, attacks: [String],
                iterations: Int = 100, squareQueries: Int = 5000, eotDraws: Int = 1, timesteps: Int = 10,
                lm: String? = nil, seed: UInt64 = 0) throws {
        guard PerturbationBudget.Norm(rawValue: norm) != nil else { throw ClassifierError("--norm: '\(norm)' is not linf or l2") }
        self.model = model; self.dataset = dataset; self.split = split; self.norm = norm
        self.epsText = epsText
        epsilon = try Self.parseEpsilon(epsText)
        guard !attacks.isEmpty else { throw ClassifierError("--attacks: empty list") }
        for a in attacks where !Self.attackNames.contains(a) {
            throw ClassifierError("--attacks: unknown attack '\(a)' (\(Self.attackNames.joined(separator: ", ")))")
        }
        if norm == "l2", attacks.contains("square") { throw ClassifierError("--attacks: square is l_inf only (drop it for --norm l2)") }
        guard iterations >= 1 else { throw ClassifierError("--iterations: must be at least 1") }
        guard squareQueries >= 1 else { throw ClassifierError("--square-queries: must be at least 1") }
        guard eotDraws >= 1 else { throw ClassifierError("--eot: must be at least 1") }
        guard timesteps >= 1 else { throw ClassifierError("--n-timesteps: must be at least 1") }
        self.attacks = attacks; self.iterations = iterations; self.squareQueries = squareQueries
        self.eotDraws = eotDraws; self.timesteps = timesteps; self.lm = lm; self.seed = seed
    }

    /// "0.1", "8/255": a finite number in [0, 1]; errors name `flag`.
    public static func parseEpsilon(_ text: String, flag: String = "--eps") throws -> Double {
        let p = text.split(separator: "/", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        var value: Double?
        if p.count == 2, let a = p[0], let b = p[1], b != 0 { value = a / b }
        if p.count == 1 { value = p[0] }
        guard let v = value, v.isFinite, v >= 0, v <= 1 else {
            throw ClassifierError("\(flag): '\(text)' is not a number or fraction (like 8/255) in [0, 1]")
        }
        return v
    }

    public var budget: PerturbationBudget { PerturbationBudget(PerturbationBudget.Norm(rawValue: norm)!, epsilon: Float(epsilon)) }

    /// The attacks, in order, for one image scored at `evaluationRandomness`.
    public func makeAttacks(evaluationRandomness r: UInt64) -> [Attack] {
        let eot = EOTSettings(eotDraws: eotDraws, evaluationRandomness: r)
        return attacks.map { name -> Attack in
            switch name {
            case "apgd-ce": return APGDAttack(budget: budget, loss: .crossEntropy, iterations: iterations, eot: eot)
            case "apgd-t": return APGDAttack(budget: budget, loss: .targetedDLR, iterations: iterations, targetCount: 9, eot: eot)
            case "apgd-dlr": return APGDAttack(budget: budget, loss: .dlr, iterations: iterations, eot: eot)
            case "pgd": return PGDAttack(budget: budget, iterations: iterations, eot: eot)
            default: return SquareAttack(budget: budget, queries: squareQueries, evaluationRandomness: r)
            }
        }
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public static func decode(_ data: Data) throws -> RobustnessSettings {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(RobustnessSettings.self, from: data)
    }

    /// "key: old -> new" for each setting that differs.
    public func differences(from other: RobustnessSettings) throws -> [String] {
        func dict(_ s: RobustnessSettings) throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: try s.encoded()) as? [String: Any]) ?? [:]
        }
        let a = try dict(other), b = try dict(self)
        return Set(a.keys).union(b.keys).sorted().compactMap { k in
            let x = a[k].map { "\($0)" } ?? "null", y = b[k].map { "\($0)" } ?? "null"
            return x == y ? nil : "\(k): \(x) -> \(y)"
        }
    }
}

/// Counts the U-Net items (one image at one timestep and condition) a classifier evaluates:
/// `items` forward, `recordedItems` of them with autodiff recording (their input needs a
/// gradient). In this package every recorded U-Net item gets exactly one backward pass (an
/// attack's gradient call, or LM's inner gradient, which runs even inside a no-grad forward), so
/// `items + recordedItems` is the forward plus backward item passes.
public final class CountingPredictor: ConditionalNoisePredictor {
    public let inner: ConditionalNoisePredictor
    public var items = 0
    public var recordedItems = 0
    /// Forward plus backward item passes so far.
    public var passes: Int { items + recordedItems }
    public init(_ inner: ConditionalNoisePredictor) {
        self.inner = inner
        if let m = inner as? Module { for p in m.parameters { p.requiresGrad = false } }
    }
    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        items += sample.shape[0]
        if Autograd.shouldRecord([sample]) { recordedItems += sample.shape[0] }
        return inner.predict(sample, timesteps: timesteps, conditions: conditions)
    }
}

/// One line of a robustness run's `results.jsonl`.
public struct RobustRecord: Codable, Equatable, Sendable {
    public struct AttackLine: Codable, Equatable, Sendable {
        public var name: String
        public var success: Bool
        public var forwardCalls: Int
        public var backwardCalls: Int
        public var queries: Int
    }
    public var index: Int
    public var label: Int
    public var cleanPrediction: Int
    public var cleanCorrect: Bool
    /// The attacks that ran, in order (none when misclassified clean; stops at the first success).
    public var attacks: [AttackLine]
    /// "robust", "misclassified" (clean) or "broken".
    public var verdict: String
    public var brokenBy: String?
    /// U-Net item passes: forward plus backward (`CountingPredictor.passes`), the clean
    /// evaluation included; for RDC, LM's inner forward and backward passes included.
    public var unetPasses: Int
    public var seconds: Double
    public var robust: Bool { verdict == "robust" }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder(); e.keyEncodingStrategy = .convertToSnakeCase; e.outputFormatting = [.sortedKeys]; return e
    }()
    static let decoder: JSONDecoder = { let d = JSONDecoder(); d.keyDecodingStrategy = .convertFromSnakeCase; return d }()
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
    /// "I/N" for a `--shard I/N` run, nil otherwise.
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
        for name in settings.attacks { b[name] = 0 }
        for r in records { if let name = r.brokenBy { b[name, default: 0] += 1 } }
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
        try RunFolder.writeSummary(self, to: url)
    }
}

/// A robustness run folder, like `EvaluationRun`: `settings.json`, `results.jsonl` (a line per
/// image, flushed as each finishes), `summary.json`, optionally `adv/INDEX.png` (broken images),
/// `adv/INDEX-clean.png` (their clean originals) and `adv/pairs.png` (clean/adversarial pairs). Reruns with equal settings skip finished
/// indices; different settings are refused, naming the differences.
///
/// Per image (index i): the evaluation randomness is `RandomGenerator(seed).derived(i).nextUInt64()`
/// and the attacks draw from `RandomGenerator(seed).derived(i).derived(1)`, so a line depends only
/// on the settings, the image and its index.
public final class RobustnessRun {
    public let directory: URL
    public let settings: RobustnessSettings
    public var settingsURL: URL { directory.appendingPathComponent("settings.json") }
    public var resultsURL: URL { directory.appendingPathComponent("results.jsonl") }
    public var summaryURL: URL { directory.appendingPathComponent("summary.json") }
    public var advDirectory: URL { directory.appendingPathComponent("adv") }

    public init(directory: URL, settings: RobustnessSettings) throws {
        self.directory = directory
        self.settings = settings
        try RunFolder.open(directory, settings: settings, settingsURL: settingsURL, resultsURL: resultsURL)
    }

    /// Records already written, by index (an unterminated last line is cut off).
    public func completedRecords() throws -> [Int: RobustRecord] {
        var out: [Int: RobustRecord] = [:]
        for (r, _) in try Self.parseResults(try RunFolder.completeLines(resultsURL), path: resultsURL.path) { out[r.index] = r }
        return out
    }

    /// The records of `results.jsonl` text with each one's line (newline included); an
    /// unterminated last line is left out. Errors name `path` and the line.
    public static func parseResults(_ data: Data, path: String) throws -> [(record: RobustRecord, line: Data)] {
        try RunFolder.parseLines(data, path: path, kind: "robustness record") { try RobustRecord.decoder.decode(RobustRecord.self, from: $0) }
    }

    /// The classifier the settings describe over `model` (classes 0..<classes; null class =
    /// the model's last class embedding), counting U-Net items in the returned predictor.
    public static func makeClassifier(settings: RobustnessSettings, model: UNet2DModel, schedule: NoiseSchedule,
                                      classes: Int, batchSize: Int = 64) throws -> (DifferentiableClassifier, CountingPredictor) {
        if settings.attacks.contains("apgd-t"), classes < 4 { throw ClassifierError("--attacks: apgd-t needs at least 4 classes (got \(classes))") }
        if settings.attacks.contains("apgd-dlr"), classes < 3 { throw ClassifierError("--attacks: apgd-dlr needs at least 3 classes (got \(classes))") }
        let counter = CountingPredictor(model)
        let head = DiffusionLogits(model: counter, schedule: schedule, conditions: Array(0..<classes),
                                   timesteps: TimestepGrid.grid(T: schedule.timesteps, maxN: settings.timesteps), batchSize: batchSize)
        guard let lmText = settings.lm else { return (head, counter) }
        guard let embeds = model.config.numClassEmbeds, embeds > classes else {
            throw ClassifierError("--lm needs a null class: the model has \(model.config.numClassEmbeds ?? 0) class embeddings for \(classes) classes")
        }
        let lm = try LikelihoodMaximization(parsing: lmText)
        return (RobustDiffusionClassifier(head: head, lm: lm, unconditional: embeds - 1), counter)
    }

    /// Attacks every index of `indices` not yet done (images [1, C, H, W] in [0, 1]), a line per
    /// image; writes and returns the summary over `indices`.
    public func run(indices: [Int], labels: [Int], classNames: [String]? = nil, limit: Int?, shard: String? = nil,
                    classifier: DifferentiableClassifier,
                    counter: CountingPredictor, image: (Int) throws -> Tensor, saveAdversarial: Bool = false,
                    progress: (RobustRecord, Int, Int) -> Void = { _, _, _ in }) throws -> RobustSummary {
        var done = try completedRecords()
        if !FileManager.default.fileExists(atPath: resultsURL.path) {
            _ = FileManager.default.createFile(atPath: resultsURL.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: resultsURL)
        defer { try? handle.close() }
        try handle.seekToEnd()
        if saveAdversarial { try FileManager.default.createDirectory(at: advDirectory, withIntermediateDirectories: true) }
        var shape: [Int] = []
        for i in indices where done[i] == nil {
            let t0 = Date()
            let x = try image(i)
            shape = Array(x.shape.dropFirst())
            var g = RandomGenerator(seed: settings.seed).derived(UInt64(i))
            let r = g.nextUInt64()
            let eval = RobustnessEvaluation(attacks: settings.makeAttacks(evaluationRandomness: r), batchSize: 1, evaluationRandomness: r)
            let before = counter.passes
            let report = eval.run(on: classifier, images: x, labels: [labels[i]], generator: g.derived(1))
            let o = report.outcomes[0]
            var lines: [RobustRecord.AttackLine] = []
            for s in report.attacks where s.attacked > 0 {
                lines.append(.init(name: s.name, success: s.broken > 0, forwardCalls: s.forwardCalls, backwardCalls: s.backwardCalls,
                                   queries: s.queries))
            }
            let brokenBy = o.brokenBy.map { settings.attacks[$0] }
            let record = RobustRecord(index: i, label: labels[i], cleanPrediction: o.cleanPrediction, cleanCorrect: o.cleanCorrect,
                                      attacks: lines, verdict: !o.cleanCorrect ? "misclassified" : (brokenBy == nil ? "robust" : "broken"),
                                      brokenBy: brokenBy, unetPasses: counter.passes - before,
                                      seconds: Date().timeIntervalSince(t0))
            var line = try RobustRecord.encoder.encode(record)
            line.append(0x0A)
            try handle.write(contentsOf: line)
            try? handle.synchronize()
            done[i] = record
            if saveAdversarial, brokenBy != nil {
                let adv = report.adversarial.scalars
                try Self.png(adv, shape: shape).writePNG(to: advDirectory.appendingPathComponent("\(i).png"))
                try Self.png(x.scalars, shape: shape).writePNG(to: advDirectory.appendingPathComponent("\(i)-clean.png"))
            }
            progress(record, indices.filter { done[$0] != nil }.count, indices.count)
        }
        if saveAdversarial {
            let broken = indices.filter { done[$0]?.brokenBy != nil }
            if shape.isEmpty, let first = broken.first { shape = Array(try image(first).shape.dropFirst()) }
            try writePairs(indices: broken, shape: shape)
        }
        let summary = RobustSummary(records: indices.compactMap { done[$0] }, settings: settings, limit: limit, shard: shard,
                                    classNames: classNames)
        try summary.write(to: summaryURL)
        return summary
    }

    /// `adv/pairs.png`: clean (left) and adversarial (right) of each of `indices` whose
    /// `adv/INDEX-clean.png` and `adv/INDEX.png` exist (so a resumed run shows every break);
    /// `shape` is [C, H, W].
    func writePairs(indices: [Int], shape: [Int]) throws {
        guard shape.count == 3 else { return }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var pairs: [[Float]] = []
        for i in indices {
            let urls = [advDirectory.appendingPathComponent("\(i)-clean.png"), advDirectory.appendingPathComponent("\(i).png")]
            guard urls.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) else { continue }
            let images = try urls.map { try Image.read($0, channels: c) }
            guard images.allSatisfy({ $0.width == w && $0.height == h }) else { continue }
            for img in images {
                var chw = [Float](repeating: 0, count: c * h * w)
                for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                    chw[(ch * h + y) * w + x] = Float(img.pixels[(y * w + x) * c + ch]) / 127.5 - 1
                } } }
                pairs.append(chw)
            }
        }
        guard !pairs.isEmpty else { return }
        try Image.grid(pairs, channels: c, height: h, width: w, columns: 2).writePNG(to: advDirectory.appendingPathComponent("pairs.png"))
    }

    /// One CHW image in [0, 1] as an 8-bit image.
    static func png(_ x: [Float], shape: [Int]) -> Image {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            pixels[(y * w + xx) * c + ch] = UInt8(Swift.max(0, Swift.min(255, (x[(ch * h + y) * w + xx] * 255).rounded())))
        } } }
        return Image(width: w, height: h, channels: c, pixels: pixels)
    }
}
