import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// The end-to-end classifier case of `diffclass bench --end-to-end`: what a user waits for at
/// equal accuracy, rather than per U-Net call. Ours: the leader-gap rule (`--leader-gap --gap 2.5
/// --timesteps grid --max-scores 500 --noise-by timestep`, seed 0), the row of docs/classifier.md's
/// official table that matches the full 500-timestep grid's accuracy (paired difference -0.10 ± 0.17
/// points on the first 2,000 test images); PyTorch: tools/reference_classifier.py running the
/// public code's default, the official staged schedule `5:50,1:500` (2,750 calls per image), which
/// gives the full grid's prediction on every one of those images. Ours runs on the first
/// `endToEndImages` test images (40: the rule's calls vary by image, and the first few are easy
/// ones), PyTorch on the first `images` (its 2,750 calls per image do not depend on the image);
/// the speedup compares time per image. Same batch size and threads; the sides alternate for
/// `rounds` rounds and the speedup is the median of the rounds' ratios, as in
/// `ClassifierBenchmark.run`.
///
/// What it does not show: the equality of accuracy. The two sides make different U-Net calls on
/// different noise, so their errors are not compared here, and a few images cannot tell accuracies
/// apart; that rests on the table (thousands of images, paired on the same (t, eps)). The per-call
/// speed of the same algorithm, with errors checked against PyTorch's, is `ClassifierBenchmark.run`.
public struct ClassifierEndToEndResult: Encodable {
    /// Images ours classified per round.
    public let images: Int
    /// Images PyTorch classified per round.
    public var torchImages: Int?
    public let batchSize: Int
    public let threads: Int
    /// Our method, as `diffclass eval` flags.
    public let ours: String
    public let callsPerImage: Double
    public let accuracy: Double
    public var seconds: Double
    public var imagesPerSecond: Double
    /// PyTorch's `--stages`.
    public let torchStages: String
    public var torchCallsPerImage: Double?
    public var torchAccuracy: Double?
    public var torchSeconds: Double?
    public var torchImagesPerSecond: Double?
    /// Per round: (our seconds, PyTorch's seconds).
    public var rounds: [[Double]] = []
    /// PyTorch's time per image / ours, the median over rounds.
    public var speedupOverTorch: Double?
    /// Of the images both sides classified, those on which they predict the same class.
    public var samePredictions: Int?
    public var torchSkipped: String?

    public var text: String {
        var lines = [String(format: "classifier end to end: Fashion-MNIST test images, batch %d, %d threads", batchSize, threads),
                     String(format: "  ours   %8.3f images/s  (%d images, %.2f s), %@: %.0f U-Net calls/image, accuracy %.2f",
                            imagesPerSecond, images, seconds, ours, callsPerImage, accuracy)]
        if let tps = torchImagesPerSecond, let ts = torchSeconds, let tn = torchImages {
            lines.append(String(format: "  torch  %8.3f images/s  (%d images, %.2f s), official --stages %@: %.0f U-Net calls/image, accuracy %.2f",
                                tps, tn, ts, torchStages, torchCallsPerImage ?? .nan, torchAccuracy ?? .nan))
            let perRound = rounds.map { String(format: "%.2f", ($0[1] / Double(tn)) / ($0[0] / Double(images))) }.joined(separator: ", ")
            lines.append(String(format: "  speedup %.2fx at equal accuracy (torch time per image / ours, median of %d alternating rounds: %@); same prediction on %d of %d images",
                                speedupOverTorch ?? .nan, rounds.count, perRound, samePredictions ?? 0, Swift.min(images, tn)))
            lines.append("  (equal accuracy: docs/classifier.md, the official schedule against the full grid; not provable on a few images)")
        } else {
            lines.append("  torch  skipped: \(torchSkipped ?? "not run")")
        }
        return lines.joined(separator: "\n")
    }
}

extension ClassifierBenchmark {
    /// Runs the end-to-end case, or returns nil (after logging why) when the shipped model's
    /// checkpoint or Fashion-MNIST is absent.
    public static func runEndToEnd(_ s: ClassifierBenchmarkSettings, log: (String) -> Void) throws -> ClassifierEndToEndResult? {
        guard let (model, schedule, dataset) = try loadCase(s, name: "classifier end-to-end", log: log) else { return nil }
        let official = try StagedElimination(parsing: s.officialStages)
        let n = Swift.min(s.endToEndImages, dataset.count), torchN = Swift.min(s.images, dataset.count)
        let classes = dataset.classNames.count
        let shape = [1, model.config.inChannels, dataset.height, dataset.width]
        let labels = Array(dataset.labels[0..<n])

        // Ours: seeded noise by timestep, as in the table's recording.
        var options = ClassifierOptions()
        options.batchSize = s.batchSize
        options.seed = 0
        options.noiseNumbering = .timestep
        let rule = SequentialElimination(rule: LeaderGapRule(threshold: s.endToEndGap), sampler: .grid(s.endToEndGrid),
                                         minScores: LeaderGapRule.defaultMinScores)
        let classifier = try Classifier(model: model, schedule: schedule, conditions: Array(0..<classes), strategy: rule, options: options)
        let method = String(format: "--leader-gap --gap %g --max-scores %d", s.endToEndGap, s.endToEndGrid)

        // PyTorch's eps rows: one per timestep of the official schedule's largest stage.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diffclass-bench-e2e-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let noiseURL = folder.appendingPathComponent("eps.safetensors")
        var g = RandomGenerator(seed: 4)
        try Safetensors.write(["eps": Tensor.randn([official.maxSamples] + shape.dropFirst(), generator: &g)], to: noiseURL)

        let warm = Swift.min(s.batchSize, classes)
        _ = Autograd.noGrad {
            model.predict(dataset.images([0]).expanded(to: [warm] + shape.dropFirst()),
                          timesteps: Array(repeating: 500, count: warm), conditions: Tensor.zeros([warm]))
        }
        log("  classifier end to end: ours \(n) images, torch \(torchN), ours \(method) against torch --stages \(s.officialStages), batch \(s.batchSize), "
            + "\(Engine.threads) threads, \(s.rounds) rounds")
        var result: ClassifierEndToEndResult?
        var ours: [Double] = [], theirs: [ReferenceAnswer] = []
        var ourPredictions: [Int] = []
        for round in 0..<Swift.max(1, s.rounds) {
            var predictions: [Int] = [], calls = 0
            let t0 = DispatchTime.now().uptimeNanoseconds
            for i in 0..<n {
                let c = try classifier.classify(dataset.images([i]), imageIndex: i)
                predictions.append(c.prediction)
                calls += c.calls
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            ours.append(seconds)
            log(String(format: "  round %d: ours %.3f images/s (%.2f s)", round + 1, Double(n) / seconds, seconds))
            if result == nil {
                ourPredictions = predictions
                let accuracy = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(n)
                result = ClassifierEndToEndResult(images: n, batchSize: s.batchSize, threads: Engine.threads, ours: method,
                                                  callsPerImage: Double(calls) / Double(n), accuracy: accuracy, seconds: seconds,
                                                  imagesPerSecond: Double(n) / seconds, torchStages: s.officialStages)
                result?.torchSkipped = torchUnavailable(s)
            }
            guard result?.torchSkipped == nil else { continue }
            result?.torchSkipped = referenceRound(s, round: round, images: torchN, noise: noiseURL, stages: s.officialStages,
                                                  folder: folder, into: &theirs, log: log)
        }
        guard var result else { throw BenchmarkFailure(message: "no end-to-end round ran") }
        result.seconds = median(ours)
        result.imagesPerSecond = Double(n) / result.seconds
        guard let answer = theirs.first, theirs.count == ours.count else { return result }
        result.torchImages = torchN
        result.rounds = zip(ours, theirs).map { [$0, $1.seconds] }
        result.torchSeconds = median(theirs.map(\.seconds))
        result.torchImagesPerSecond = Double(torchN) / result.torchSeconds!
        result.torchCallsPerImage = answer.calls.map { Double($0) / Double(torchN) }
        result.torchAccuracy = answer.accuracy
        result.speedupOverTorch = median(zip(ours, theirs).map { ($1.seconds / Double(torchN)) / ($0 / Double(n)) })
        result.samePredictions = zip(ourPredictions, answer.predictions).filter { $0 == $1 }.count
        return result
    }
}
