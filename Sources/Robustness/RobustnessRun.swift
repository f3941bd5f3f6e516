import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

extension PerturbationBudget.Norm {
    public init(_ norm: PerturbationNorm) {
        switch norm {
        case .linf: self = .linf
        case .l2: self = .l2
        }
    }
}

extension RobustnessSettings {
    public var budget: PerturbationBudget { PerturbationBudget(PerturbationBudget.Norm(norm), epsilon: Float(epsilon)) }

    /// The attacks, in order, for one image scored at `evaluationRandomness`.
    public func makeAttacks(evaluationRandomness r: UInt64) -> [Attack] {
        let eot = EOTSettings(eotDraws: eotDraws, evaluationRandomness: r)
        return attacks.map { kind -> Attack in
            switch kind {
            case .apgdCE: return APGDAttack(budget: budget, loss: .crossEntropy, iterations: iterations, eot: eot)
            case .apgdT: return APGDAttack(budget: budget, loss: .targetedDLR, iterations: iterations, targetCount: 9, eot: eot)
            case .apgdDLR: return APGDAttack(budget: budget, loss: .dlr, iterations: iterations, eot: eot)
            case .pgd: return PGDAttack(budget: budget, iterations: iterations, eot: eot)
            case .square: return SquareAttack(budget: budget, queries: squareQueries, evaluationRandomness: r)
            }
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
        try RunFolder.parseLines(data, path: path, kind: "robustness record", decode: RobustRecord.parse)
    }

    /// The classifier the settings describe over `model` (classes 0..<classes; null class =
    /// the model's last class embedding), counting U-Net items in the returned predictor.
    public static func makeClassifier(settings: RobustnessSettings, model: UNet2DModel, schedule: NoiseSchedule,
                                      classes: Int, batchSize: Int = 64) throws -> (DifferentiableClassifier, CountingPredictor) {
        try settings.validate(classes: classes)
        let counter = CountingPredictor(model)
        let head = DiffusionLogits(model: counter, schedule: schedule, conditions: Array(0..<classes),
                                   timesteps: TimestepGrid.grid(T: schedule.numTrainTimesteps, maxN: settings.timestepCount), batchSize: batchSize)
        guard let lm = settings.lm else { return (head, counter) }
        guard let embeds = model.config.numClassEmbeds, embeds > classes else {
            throw ClassifierError(.lm, "needs a null class: the model has \(model.config.numClassEmbeds ?? 0) class embeddings for \(classes) classes")
        }
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
                                      attacks: lines, verdict: !o.cleanCorrect ? .misclassified : (brokenBy == nil ? .robust : .broken),
                                      brokenBy: brokenBy, unetPasses: counter.passes - before,
                                      seconds: Date().timeIntervalSince(t0))
            try handle.write(contentsOf: try record.line())
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
