import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// Settings of the classifier that do not change which probes are scored.
public struct ClassifierOptions: Sendable {
    public var loss: ErrorLoss = .l2
    public var weighting: TimestepWeighting = .uniform
    /// Pairs per U-Net call; does not change results.
    public var batchSize = 256
    /// Images classified at once by `Classifier.classify(images:)` and evaluation runs, their
    /// (class, probe) pairs pooled into shared U-Net calls (`CrossImageBatcher`); does not change
    /// results. 1: one image at a time.
    public var imagesInFlight = 1
    /// Posterior temperature (see `Posterior`).
    public var tau = 1.0
    /// Seeds each image's noise and timestep draws (see `SeededNoise`).
    public var seed: UInt64 = 0
    /// Each class draws its own eps per probe (`SeededNoise.independent`) instead of sharing
    /// one; for studying the paired design (`diffclass analyze`), not for classifying.
    public var independentNoise = false
    /// Draws numbered by probe (the public code's) or by timestep (`ImageScorer.noiseByTimestep`).
    public var noiseNumbering = NoiseNumbering.probe
    public init() {}
}

/// What the classifier concluded for one image.
public struct Classification: Sendable {
    /// The predicted candidate (index into the classifier's conditions).
    public let prediction: Int
    /// Candidates still in the running when the strategy stopped.
    public let survivors: [Int]
    /// Every candidate, best first (`ClassRanking`: by probes seen, survivors first, mean error);
    /// the prediction is first. Top-k accuracy reads its first k.
    public var ranking: [Int] { ClassRanking.rank(prediction: prediction, survivors: survivors, scoreCounts: scoreCounts, meanErrors: meanErrors) }
    /// Per candidate: mean weighted error over the probes it saw.
    public let meanErrors: [Double?]
    /// Per candidate: how many probes it was scored on.
    public let scoreCounts: [Int]
    public let probabilities: [Double]
    /// U-Net forward passes (one per (class, probe) pair).
    public let calls: Int
    /// Per candidate: its mean error on the prediction's probes, estimated from the probes it
    /// shares with the prediction (`ProbeScorer.pairedMeanErrors`); equals `meanErrors` for
    /// every class scored on all of them. The probabilities are softmax(-tau * these).
    public var pairedErrors: [Double?] = []
    /// The timestep of each probe, in creation order (empty when not recorded).
    public var probeTimesteps: [Int] = []
    /// Per candidate, per probe: the weighted error, nil where the candidate was not scored
    /// (empty when not recorded).
    public var probeErrors: [[Double?]] = []
    /// With reused errors (`Classifier.reusedErrors`): the U-Net passes actually run (`calls`
    /// counts the passes the strategy spends, reused or not); nil otherwise.
    public var modelCalls: Int?

    public init(prediction: Int, survivors: [Int], meanErrors: [Double?], scoreCounts: [Int], probabilities: [Double], calls: Int) {
        self.prediction = prediction
        self.survivors = survivors
        self.meanErrors = meanErrors
        self.scoreCounts = scoreCounts
        self.probabilities = probabilities
        self.calls = calls
    }
}

/// A diffusion model as a classifier (Li et al. 2023): predict argmin_c of the mean
/// eps-prediction error of eps_theta(x_t, t, c), with the noise shared by every class. The
/// strategy decides which (class, timestep) pairs are scored.
public final class Classifier {
    public let model: ConditionalNoisePredictor
    public let schedule: NoiseSchedule
    public let conditions: [Int]
    public let strategy: ClassificationStrategy
    public let options: ClassifierOptions
    public let range: Range<Int>
    public let noiseFile: FileNoise?
    /// Errors an earlier run recorded on the same noise, by image index (`eval --reuse`): an
    /// image found here looks up the (class, t) errors the record has and computes only the rest
    /// (`ImageScorer.knownErrors`); its results equal a run without them (up to the engine's
    /// batch-size rounding, ~1e-7 relative). Needs noise numbered by timestep, shared and seeded.
    public var reusedErrors: [Int: RecordedErrors] = [:]
    public let weights: [Double]
    /// Pools the pairs of the images in flight (`options.imagesInFlight`); scorers made on its
    /// image threads submit to it, scorers made elsewhere call the model themselves.
    public let batcher: CrossImageBatcher

    /// `conditions`: the model's class id for each candidate (0..<K for a class-conditional
    /// U-Net). `range`: the timesteps allowed (default 0..<T). `noiseFile`: fixed noise for
    /// every image instead of seeded draws.
    public init(model: ConditionalNoisePredictor, schedule: NoiseSchedule, conditions: [Int], strategy: ClassificationStrategy,
                options: ClassifierOptions = ClassifierOptions(), range: Range<Int>? = nil, noiseFile: FileNoise? = nil) throws {
        let range = range ?? 0..<schedule.numTrainTimesteps
        guard range.lowerBound >= 0, range.upperBound <= schedule.numTrainTimesteps, !range.isEmpty else {
            throw ClassifierError(.timestepRange, "\(range.lowerBound):\(range.upperBound) is not a non-empty part of 0:\(schedule.numTrainTimesteps)")
        }
        guard !conditions.isEmpty else { throw ClassifierError("no classes to choose from") }
        guard options.batchSize >= 1 else { throw ClassifierError(.batchSize, "must be at least 1") }
        guard options.imagesInFlight >= 1 else { throw ClassifierError(.imagesInFlight, "must be at least 1") }
        try strategy.validate(range: range, classes: conditions.count)
        self.model = model
        self.schedule = schedule
        self.conditions = conditions
        self.strategy = strategy
        self.options = options
        self.range = range
        self.noiseFile = noiseFile
        weights = options.weighting.weights(schedule: schedule)
        try options.weighting.checkWeights(weights, range: range)
        batcher = CrossImageBatcher(model: model, schedule: schedule, loss: options.loss, batchSize: options.batchSize,
                                    imagesInFlight: options.imagesInFlight)
    }

    /// A scorer for image `imageIndex` (x0 [1, C, H, W] in the model's input range).
    public func makeScorer(_ x0: Tensor, imageIndex: Int) throws -> ImageScorer {
        let noise: NoiseSource
        if let noiseFile {
            guard !options.independentNoise else { throw ClassifierError(.noise, "a noise file cannot give independent noise per class") }
            try noiseFile.check(imageShape: x0.shape)
            noise = noiseFile
        } else {
            noise = SeededNoise(seed: options.seed, imageIndex: imageIndex, shape: x0.shape)
        }
        let scorer = ImageScorer(model: model, schedule: schedule, x0: x0, conditions: conditions, loss: options.loss,
                                 weights: weights, batchSize: options.batchSize, noise: noise)
        scorer.noiseByTimestep = options.noiseNumbering == .timestep
        if batcher.isImageThread { scorer.batcher = batcher }
        if let reused = reusedErrors[imageIndex] {
            guard options.noiseNumbering == .timestep, noiseFile == nil, !options.independentNoise else {
                throw ClassifierError(.reuse, "recorded errors can only be reused with \(Setting.noiseBy) timestep and shared seeded noise")
            }
            scorer.knownErrors = reused.error
        }
        if options.independentNoise {
            scorer.classNoise = conditions.indices.map {
                SeededNoise.independent(seed: options.seed, imageIndex: imageIndex, classIndex: $0, shape: x0.shape)
            }
        }
        return scorer
    }

    /// Classifies one image. Results depend only on (settings, seed, imageIndex, x0).
    public func classify(_ x0: Tensor, imageIndex: Int) throws -> Classification {
        try classifyKeepingScorer(x0, imageIndex: imageIndex).classification
    }

    /// Classifies several images (x0, index) at once, `options.imagesInFlight` in flight with
    /// their U-Net calls shared; the same classifications as `classify` on each, in order.
    public func classify(images: [(x0: Tensor, imageIndex: Int)]) throws -> [Classification] {
        var out = [Classification?](repeating: nil, count: images.count)
        try batcher.run(images.count) { j in out[j] = try classify(images[j].x0, imageIndex: images[j].imageIndex) }
        return out.map { $0! }
    }

    /// `classify`, also returning the scorer with every (class, probe) error it computed (for
    /// per-timestep output such as `diffclass zeroshot --json`).
    public func classifyKeepingScorer(_ x0: Tensor, imageIndex: Int) throws -> (classification: Classification, scorer: ImageScorer) {
        let scorer = try makeScorer(x0, imageIndex: imageIndex)
        var c = try Classifier.run(strategy, on: scorer, range: range, seed: options.seed, imageIndex: imageIndex, tau: options.tau)
        if scorer.knownErrors != nil { c.modelCalls = scorer.modelCalls }
        return (c, scorer)
    }

    /// Runs `strategy` on `scorer` (image `imageIndex`'s timestep generator for random draws) and
    /// turns its survivors into a classification: the survivor of lowest mean error, and
    /// probabilities softmax(-tau * paired mean errors) (`ProbeScorer.pairedMeanErrors` against
    /// the prediction, so classes pruned early are compared on the probes they share with it).
    public static func run(_ strategy: ClassificationStrategy, on scorer: ProbeScorer, range: Range<Int>, seed: UInt64,
                           imageIndex: Int, tau: Double) throws -> Classification {
        var generator = SeededNoise.imageGenerator(seed: seed, imageIndex: imageIndex).derived(1)
        let survivors = try strategy.run(scorer, range: range, generator: &generator)
        let means = (0..<scorer.candidateCount).map { scorer.meanError($0) }
        let prediction = survivors.min { (means[$0] ?? .infinity, $0) < (means[$1] ?? .infinity, $1) }!
        let paired = scorer.pairedMeanErrors(reference: prediction)
        var c = Classification(prediction: prediction, survivors: survivors, meanErrors: means,
                               scoreCounts: scorer.probeIDs.map(\.count),
                               probabilities: Posterior.probabilities(meanErrors: paired, tau: tau), calls: scorer.calls)
        c.pairedErrors = paired
        c.probeTimesteps = scorer.probes.map(\.timestep)
        c.probeErrors = scorer.errorTable()
        return c
    }
}
