import Diffusion
import DiffusionClassifier
import Foundation
import Images
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
public final class CountingPredictor: ConditionalNoisePredictor, NoiseLevelDenoiser {
    public let inner: ConditionalNoisePredictor
    /// The inner network at any noise level (counted likewise), when it has one.
    public let innerDenoiser: NoiseLevelDenoiser?
    public var items = 0
    public var recordedItems = 0
    /// Forward plus backward item passes so far.
    public var passes: Int { items + recordedItems }
    public init(_ inner: ConditionalNoisePredictor, denoiser: NoiseLevelDenoiser? = nil) {
        self.inner = inner
        innerDenoiser = denoiser
        if let m = inner as? Module { for p in m.parameters { p.requiresGrad = false } }
    }
    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        items += sample.shape[0]
        if Autograd.shouldRecord([sample]) { recordedItems += sample.shape[0] }
        return inner.predict(sample, timesteps: timesteps, conditions: conditions)
    }
    public func denoise(_ noisy: Tensor, sigmas: [Float], conditions: Tensor?) -> Tensor {
        guard let innerDenoiser else { preconditionFailure("CountingPredictor: the inner predictor has no noise-level denoiser") }
        items += noisy.shape[0]
        if Autograd.shouldRecord([noisy]) { recordedItems += noisy.shape[0] }
        return innerDenoiser.denoise(noisy, sigmas: sigmas, conditions: conditions)
    }
}

/// A robustness run into its run folder (`RobustnessFolder`, see `RunFolder` for opening,
/// resuming and merging): one `RobustRecord` line per image (flushed to disk as each finishes),
/// `summary.json`, optionally `adv/INDEX.png` (broken images), `adv/INDEX-clean.png` (their
/// clean originals) and `adv/pairs.png` (clean/adversarial pairs).
///
/// Per image (index i): the evaluation randomness is `RandomGenerator(seed).derived(i).nextUInt64()`
/// and the attacks draw from `RandomGenerator(seed).derived(i).derived(1)`, so a line depends only
/// on the settings, the image and its index.
public final class RobustnessRun {
    public let folder: RobustnessFolder
    public let settings: RobustnessSettings
    /// Held while this run exists: no other process writes the folder meanwhile.
    public let lock: RunFolderLock
    public var directory: URL { folder.directory }
    public var settingsURL: URL { folder.settingsURL }
    public var resultsURL: URL { folder.resultsURL }
    public var summaryURL: URL { folder.summaryURL }
    public var advDirectory: URL { directory.appendingPathComponent("adv") }

    public init(directory: URL, settings: RobustnessSettings) throws {
        folder = RobustnessFolder(directory)
        self.settings = settings
        lock = try folder.open(settings: settings)
    }

    /// Records already written, by index (an unterminated last line is cut off).
    public func completedRecords() throws -> [Int: RobustRecord] { try folder.completedRecords() }

    /// The records of `results.jsonl` text with each one's line (newline included); an
    /// unterminated last line is left out. Errors name `path` and the line.
    public static func parseResults(_ data: Data, path: String) throws -> [(record: RobustRecord, line: Data)] {
        try RobustnessFolder.parseResults(data, path: path)
    }

    /// The classifier the settings describe over `model` (any family: its conditions, its
    /// unconditional model for RDC, its encoder), counting U-Net items in the returned predictor.
    public static func makeClassifier(settings: RobustnessSettings, model: ClassifierModel,
                                      batchSize: Int = 64) throws -> (DifferentiableClassifier, CountingPredictor) {
        try settings.validate(classes: model.classCount)
        let counter = CountingPredictor(model.predictor, denoiser: model.denoiser)
        let (timesteps, weighting) = try settings.timesteps(schedule: model.schedule)
        let noise = try settings.noiseFile.map { try FileNoise(url: URL(fileURLWithPath: $0)) }
        if let noise, noise.eps.shape[0] < timesteps.count {
            throw ClassifierError(.noise, "\(noise.path): 'eps' has \(noise.eps.shape[0]) draws for \(timesteps.count) timesteps")
        }
        let head = DiffusionLogits(model: counter, schedule: model.schedule, conditions: model.conditions, timesteps: timesteps,
                                   weighting: weighting, batchSize: batchSize, noise: noise, encoder: model.encoder)
        guard let lm = settings.lm else { return (head, counter) }
        guard let unconditional = model.unconditional else {
            throw ClassifierError(.lm, "needs a null class (the unconditional model): \(model.summary) has none beyond its \(model.classCount) classes")
        }
        return (RobustDiffusionClassifier(head: head, lm: lm, unconditional: unconditional,
                                          denoiser: model.denoiser == nil ? nil : counter), counter)
    }

    /// `makeClassifier` over a class-conditional `UNet2DModel` (classes 0..<classes; null class =
    /// its last class embedding).
    public static func makeClassifier(settings: RobustnessSettings, model: UNet2DModel, schedule: NoiseSchedule,
                                      classes: Int, batchSize: Int = 64) throws -> (DifferentiableClassifier, CountingPredictor) {
        try makeClassifier(settings: settings, model: ClassifierModel(unet: model, schedule: schedule, classes: classes), batchSize: batchSize)
    }

    /// Attacks every index of `indices` not yet done (images [1, C, H, W] in [0, 1]), a line per
    /// image; writes and returns the summary over `indices`.
    public func run(indices: [Int], labels: [Int], classNames: [String]? = nil, limit: Int?, shard: String? = nil,
                    classifier: DifferentiableClassifier,
                    counter: CountingPredictor, image: (Int) throws -> Tensor, saveAdversarial: Bool = false,
                    progress: (RobustRecord, Int, Int) -> Void = { _, _, _ in }) throws -> RobustSummary {
        if saveAdversarial { try FileManager.default.createDirectory(at: advDirectory, withIntermediateDirectories: true) }
        var shape: [Int] = []
        var pending: (x: Tensor, adversarial: Tensor)?
        let records = try folder.complete(indices, sync: true, check: { r in
            guard labels.indices.contains(r.index) else { return "has index \(r.index), outside the data's 0..<\(labels.count)" }
            return r.label == labels[r.index] ? nil : "has label \(r.label), but image \(r.index) of the data has label \(labels[r.index])"
        }, produce: { i in
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
            pending = brokenBy == nil ? nil : (x, report.adversarial)
            return RobustRecord(index: i, label: labels[i], cleanPrediction: o.cleanPrediction, cleanCorrect: o.cleanCorrect,
                                attacks: lines, verdict: !o.cleanCorrect ? .misclassified : (brokenBy == nil ? .robust : .broken),
                                brokenBy: brokenBy, unetPasses: counter.passes - before, seconds: Date().timeIntervalSince(t0))
        }, finished: { record, done in
            if saveAdversarial, let (x, adversarial) = pending {
                try Image(unitPixels: adversarial.scalars, shape: shape).writePNG(to: advDirectory.appendingPathComponent("\(record.index).png"))
                try Image(unitPixels: x.scalars, shape: shape).writePNG(to: advDirectory.appendingPathComponent("\(record.index)-clean.png"))
            }
            progress(record, indices.filter { done[$0] != nil }.count, indices.count)
        })
        if saveAdversarial {
            let broken = records.filter { $0.brokenBy != nil }.map(\.index)
            if shape.isEmpty, let first = broken.first { shape = Array(try image(first).shape.dropFirst()) }
            try writePairs(indices: broken, shape: shape)
        }
        let summary = RobustSummary(records: records, settings: settings, limit: limit, shard: shard, classNames: classNames)
        try folder.writeSummary(summary)
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
            pairs += images.map(\.signedPixels)
        }
        guard !pairs.isEmpty else { return }
        try Image.grid(pairs, channels: c, height: h, width: w, columns: 2).writePNG(to: advDirectory.appendingPathComponent("pairs.png"))
    }
}
