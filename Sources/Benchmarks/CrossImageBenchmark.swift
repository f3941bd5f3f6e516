import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// The cross-image batching case of `diffclass bench --cross-image`: U-Net calls per second of
/// the leader-gap rule (defaults: Z 2, 5 shared probes, the shuffled 50-timestep grid; noise by
/// timestep, seed 0) on the first `crossImageImages` Fashion-MNIST test images, one image at a
/// time (each round's pairs alone: at most 10 per call after the first round) against
/// `imagesInFlight` images in flight (their pairs pooled, `CrossImageBatcher`), same batch size
/// and threads. The two alternate for `rounds` rounds; the speedup is the median of the rounds'
/// ratios. The classifications must be identical bit for bit (exit status 1 if not).
public struct CrossImageBatchingResult: Encodable {
    public let images: Int
    public let batchSize: Int
    public let threads: Int
    public let imagesInFlight: Int
    public let method: String
    public let callsPerImage: Double
    /// U-Net passes per model call (mean), one image at a time and with images in flight.
    public let meanCallSizeAlone: Double
    public let meanCallSizeInFlight: Double
    /// Per round: (seconds one at a time, seconds in flight).
    public var rounds: [[Double]] = []
    public var callsPerSecondAlone: Double = 0
    public var callsPerSecondInFlight: Double = 0
    /// Time one at a time / time in flight, the median over rounds.
    public var speedup: Double = 0
    /// Predictions, calls and every per-probe error equal bit for bit.
    public var identical = true

    public var text: String {
        let perRound = rounds.map { String(format: "%.2f", $0[0] / $0[1]) }.joined(separator: ", ")
        return [String(format: "cross-image batching: %d Fashion-MNIST test images, %@, batch %d, %d threads, %.0f U-Net calls/image",
                       images, method, batchSize, threads, callsPerImage),
                String(format: "  one image at a time  %8.1f calls/s  (%.1f passes per model call)", callsPerSecondAlone, meanCallSizeAlone),
                String(format: "  %2d images in flight  %8.1f calls/s  (%.1f passes per model call)", imagesInFlight, callsPerSecondInFlight,
                       meanCallSizeInFlight),
                String(format: "  speedup %.2fx (median of %d alternating rounds: %@); classifications %@", speedup, rounds.count, perRound,
                       identical ? "identical bit for bit" : "DIFFER")].joined(separator: "\n")
    }
}

/// Forwards to a model and counts its calls.
private final class CallCounter: ConditionalNoisePredictor {
    let base: ConditionalNoisePredictor
    var calls = 0, items = 0
    init(_ base: ConditionalNoisePredictor) { self.base = base }
    func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        calls += 1
        items += sample.shape[0]
        return base.predict(sample, timesteps: timesteps, conditions: conditions)
    }
}

extension ClassifierBenchmark {
    /// Runs the cross-image case, or returns nil (after logging why) when the shipped model's
    /// checkpoint or Fashion-MNIST is absent.
    public static func runCrossImage(_ s: ClassifierBenchmarkSettings, log: (String) -> Void) throws -> CrossImageBatchingResult? {
        guard let (unet, schedule, dataset) = try loadCase(s, name: "cross-image batching", log: log) else { return nil }
        let n = Swift.min(s.crossImageImages, dataset.count)
        let classes = dataset.classNames.count
        let model = CallCounter(unet)
        func classifier(inFlight: Int) throws -> Classifier {
            var options = ClassifierOptions()
            options.batchSize = s.batchSize
            options.seed = 0
            options.noiseNumbering = .timestep
            options.imagesInFlight = inFlight
            let rule = SequentialElimination(rule: LeaderGapRule(), sampler: .grid(LeaderGapRule.defaultGridSize),
                                             minScores: LeaderGapRule.defaultMinScores)
            return try Classifier(model: model, schedule: schedule, conditions: Array(0..<classes), strategy: rule, options: options)
        }
        let alone = try classifier(inFlight: 1), together = try classifier(inFlight: s.imagesInFlight)
        let inputs = (0..<n).map { (x0: dataset.images([$0]), imageIndex: $0) }
        _ = Autograd.noGrad { unet.predict(inputs[0].x0, timesteps: [500], conditions: Tensor.zeros([1])) }
        log("  cross-image batching: \(n) images, leader-gap defaults, batch \(s.batchSize), 1 vs \(s.imagesInFlight) images in flight, "
            + "\(Engine.threads) threads, \(s.rounds) rounds")
        func timed(_ c: Classifier) throws -> (seconds: Double, results: [Classification], calls: Int, items: Int) {
            model.calls = 0
            model.items = 0
            let t0 = DispatchTime.now().uptimeNanoseconds
            let results = try c.classify(images: inputs)
            return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, results, model.calls, model.items)
        }
        var rounds: [[Double]] = []
        var first: (a: (seconds: Double, results: [Classification], calls: Int, items: Int),
                    b: (seconds: Double, results: [Classification], calls: Int, items: Int))?
        for round in 0..<Swift.max(1, s.rounds) {
            let a = try timed(alone), b = try timed(together)
            rounds.append([a.seconds, b.seconds])
            log(String(format: "  round %d: one at a time %.2f s, in flight %.2f s (%.2fx)", round + 1, a.seconds, b.seconds, a.seconds / b.seconds))
            if first == nil { first = (a, b) }
        }
        let (a, b) = first!
        func same(_ x: Classification, _ y: Classification) -> Bool {
            x.prediction == y.prediction && x.calls == y.calls && x.probeTimesteps == y.probeTimesteps
                && x.probeErrors.map { $0.map { $0?.bitPattern } } == y.probeErrors.map { $0.map { $0?.bitPattern } }
        }
        let passes = a.results.map(\.calls).reduce(0, +)
        var result = CrossImageBatchingResult(images: n, batchSize: s.batchSize, threads: Engine.threads, imagesInFlight: s.imagesInFlight,
                                              method: "--leader-gap (defaults) --noise-by timestep",
                                              callsPerImage: Double(passes) / Double(n),
                                              meanCallSizeAlone: Double(a.items) / Double(Swift.max(1, a.calls)),
                                              meanCallSizeInFlight: Double(b.items) / Double(Swift.max(1, b.calls)))
        result.rounds = rounds
        result.callsPerSecondAlone = Double(passes) / median(rounds.map { $0[0] })
        result.callsPerSecondInFlight = Double(passes) / median(rounds.map { $0[1] })
        result.speedup = median(rounds.map { $0[0] / $0[1] })
        result.identical = a.results.count == b.results.count && zip(a.results, b.results).allSatisfy(same)
        return result
    }
}
