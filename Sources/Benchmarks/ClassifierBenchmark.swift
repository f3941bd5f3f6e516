import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// The classifier case of `diffclass bench` (issue #4): our `Classifier` against
/// tools/reference_classifier.py (the public Diffusion Classifier algorithm in PyTorch) on the
/// shipped Fashion-MNIST model, the first `images` test images, the same eps rows (a seeded
/// `eps` file written to a temporary folder, `FileNoise` here and `--noise` there), the same
/// stages, batch size and thread count, in one invocation. Both must give the same predictions
/// and per-image, per-class mean errors within `tolerance` (relative); the speedup is PyTorch's
/// time over ours. The two sides alternate for `rounds` rounds (ours, PyTorch, ours, ...) and the
/// speedup is the median of the rounds' ratios: this machine's speed drifts by 15-25% within
/// minutes, and a pair of runs a few seconds apart sees the same machine.
public struct ClassifierBenchmarkSettings: Sendable {
    public var model = "models/fashion-mnist"
    public var images = 4
    public var stages = "5:10,1:50"
    /// (class, timestep) pairs per U-Net call, on both sides; 32 is the public code's default.
    public var batchSize = 32
    public var referenceScript = "tools/reference_classifier.py"
    public var python = "python3"
    public var runTorch = true
    public var tolerance = 1e-4
    /// Alternating rounds of ours and PyTorch's.
    public var rounds = 3
    /// Also time the end-to-end case (`ClassifierBenchmark.runEndToEnd`): our leader-gap rule
    /// against PyTorch's official schedule, the configurations of equal accuracy.
    public var endToEnd = false
    /// End to end, ours: the leader-gap rule's threshold (`--gap`) over a grid of this many timesteps.
    public var endToEndGap = 2.5
    public var endToEndGrid = 500
    /// End to end, ours: images classified per round. The rule's calls vary by image (50 to a few
    /// thousand), so a few images are not representative: the first 4 average 100 calls, the first
    /// 40 252 (the first 2,000: 255). PyTorch's official schedule makes 2,750 calls on every image,
    /// so its time per image does not depend on which images it gets, and it runs on `images`.
    public var endToEndImages = 40
    /// End to end, PyTorch: the public code's official schedule.
    public var officialStages = "5:50,1:500"
    /// Also time cross-image batching (`ClassifierBenchmark.runCrossImage`): the leader-gap rule
    /// one image at a time against `imagesInFlight` images in flight, on `crossImageImages` images.
    public var crossImage = false
    public var crossImageImages = 32
    public var imagesInFlight = 8
    public init() {}
}

public struct ClassifierBenchmarkResult: Encodable {
    public let images: Int
    public let stages: String
    public let batchSize: Int
    public let threads: Int
    public let callsPerImage: Double
    public let accuracy: Double
    public var seconds: Double
    public var cpuSeconds: Double
    public var imagesPerSecond: Double
    /// Share of our time spent inside the U-Net's forward passes (the rest: noise, x_t, errors, bookkeeping).
    public let forwardFraction: Double
    /// Per round: (our seconds, PyTorch's seconds); `seconds` and `torchSeconds` are the medians.
    public var rounds: [[Double]] = []
    public var torch: String?
    public var torchAccuracy: Double?
    public var torchSeconds: Double?
    public var torchCPUSeconds: Double?
    public var torchImagesPerSecond: Double?
    /// PyTorch time / our time, the median over rounds: above 1 means we are faster.
    public var speedupOverTorch: Double?
    /// The same in process CPU time (all threads): steadier than wall time on a loaded machine,
    /// but it counts spin-waiting threads (PyTorch's OpenMP spins), so read it at 1 thread.
    public var cpuSpeedupOverTorch: Double?
    public var predictionsAgree: Bool?
    /// Largest |ours - torch| / max(|ours|, |torch|) over every image's per-class mean errors.
    public var maxRelativeDifference: Double?
    public var matches: Bool?
    /// Why the PyTorch half did not run, when it did not.
    public var torchSkipped: String?

    enum CodingKeys: String, CodingKey {
        case images, stages, batchSize, threads, callsPerImage, accuracy, seconds, cpuSeconds, imagesPerSecond, forwardFraction, rounds, torch,
             torchAccuracy, torchSeconds, torchCPUSeconds, torchImagesPerSecond, speedupOverTorch, cpuSpeedupOverTorch, predictionsAgree,
             maxRelativeDifference, matches, torchSkipped
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(images, forKey: .images); try c.encode(stages, forKey: .stages); try c.encode(batchSize, forKey: .batchSize)
        try c.encode(threads, forKey: .threads); try c.encode(callsPerImage, forKey: .callsPerImage)
        try c.encode(accuracy, forKey: .accuracy); try c.encode(seconds, forKey: .seconds); try c.encode(cpuSeconds, forKey: .cpuSeconds)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond); try c.encode(forwardFraction, forKey: .forwardFraction)
        try c.encode(rounds, forKey: .rounds)
        try c.encodeIfPresent(torch, forKey: .torch); try c.encodeIfPresent(torchAccuracy, forKey: .torchAccuracy)
        try c.encodeIfPresent(torchSeconds, forKey: .torchSeconds); try c.encodeIfPresent(torchCPUSeconds, forKey: .torchCPUSeconds)
        try c.encodeIfPresent(torchImagesPerSecond, forKey: .torchImagesPerSecond)
        try c.encodeIfPresent(speedupOverTorch, forKey: .speedupOverTorch)
        try c.encodeIfPresent(cpuSpeedupOverTorch, forKey: .cpuSpeedupOverTorch)
        try c.encodeIfPresent(predictionsAgree, forKey: .predictionsAgree)
        try c.encodeIfPresent(maxRelativeDifference, forKey: .maxRelativeDifference)
        try c.encodeIfPresent(matches, forKey: .matches); try c.encodeIfPresent(torchSkipped, forKey: .torchSkipped)
    }

    /// A few lines for the bench's table.
    public var text: String {
        var lines = [String(format: "classifier: %d Fashion-MNIST test images, stages %@ (%.0f U-Net calls/image), batch %d, %d threads",
                            images, stages, callsPerImage, batchSize, threads),
                     String(format: "  ours   %8.3f images/s  (%.2f s, %.2f CPU s, %.0f%% in U-Net forward), accuracy %.2f",
                            imagesPerSecond, seconds, cpuSeconds, 100 * forwardFraction, accuracy)]
        if let tps = torchImagesPerSecond, let ts = torchSeconds {
            lines.append(String(format: "  torch  %8.3f images/s  (%.2f s, %.2f CPU s), accuracy %.2f   [%@]",
                                tps, ts, torchCPUSeconds ?? .nan, torchAccuracy ?? .nan, torch ?? "?"))
            let perRound = rounds.map { String(format: "%.2f", $0[1] / $0[0]) }.joined(separator: ", ")
            lines.append(String(format: "  speedup %.2fx (torch time / ours, median of %d alternating rounds: %@; in CPU time %.2fx)",
                                speedupOverTorch ?? .nan, rounds.count, perRound, cpuSpeedupOverTorch ?? .nan))
            lines.append(String(format: "  predictions %@; max relative mean-error difference %.2e -> %@",
                                predictionsAgree == true ? "equal" : "DIFFER", maxRelativeDifference ?? .nan,
                                matches == true ? "match" : "MISMATCH"))
        } else {
            lines.append("  torch  skipped: \(torchSkipped ?? "not run")")
        }
        return lines.joined(separator: "\n")
    }
}

/// Counts the time spent in the wrapped model's forward passes.
final class TimedPredictor: ConditionalNoisePredictor {
    let inner: ConditionalNoisePredictor
    var nanoseconds: UInt64 = 0
    init(_ inner: ConditionalNoisePredictor) { self.inner = inner }
    func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let out = inner.predict(sample, timesteps: timesteps, conditions: conditions)
        nanoseconds += DispatchTime.now().uptimeNanoseconds - t0
        return out
    }
}

public enum ClassifierBenchmark {
    /// The median (the mean of the middle two for an even count); nan for none.
    static func median(_ xs: [Double]) -> Double {
        let v = xs.sorted(), k = v.count
        if k == 0 { return .nan }
        return k % 2 == 1 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2
    }

    /// Process CPU time (all threads), seconds.
    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Runs the case, or returns nil (after logging why) when the shipped model's checkpoint or
    /// Fashion-MNIST is absent. Throws on errors of ours (a malformed model, a bad stage text).
    /// The shipped model, its schedule and the Fashion-MNIST test split, or nil (after logging
    /// why) when the checkpoint or the dataset is absent.
    static func loadCase(_ s: ClassifierBenchmarkSettings, name: String,
                         log: (String) -> Void) throws -> (model: UNet2DModel, schedule: NoiseSchedule, dataset: ImageDataset)? {
        let modelURL = URL(fileURLWithPath: s.model)
        let weights = modelURL.appendingPathComponent(DiffusersFolder.weightsName)
        guard FileManager.default.fileExists(atPath: weights.path) else {
            log("  \(name) case skipped: \(weights.path) is absent (the shipped checkpoint is git-ignored; "
                + "copy it there or train one with 'diffclass train')")
            return nil
        }
        let dataset: ImageDataset
        do { dataset = try FashionMNIST.load(split: .test) } catch {
            log("  \(name) case skipped: \(error)")
            return nil
        }
        let model = try UNet2DModel.load(from: modelURL)
        let schedule = NoiseSchedule(try SchedulerConfig.load(modelURL.appendingPathComponent(DiffusersFolder.schedulerPath)))
        return (model, schedule, dataset)
    }

    /// Why the PyTorch half cannot run, or nil.
    static func torchUnavailable(_ s: ClassifierBenchmarkSettings) -> String? {
        !s.runTorch ? "--no-torch"
            : FileManager.default.fileExists(atPath: s.referenceScript) ? nil
            : "\(s.referenceScript) not found (run from the repository root)"
    }

    public static func run(_ s: ClassifierBenchmarkSettings, log: (String) -> Void) throws -> ClassifierBenchmarkResult? {
        guard let (model, schedule, dataset) = try loadCase(s, name: "classifier", log: log) else { return nil }
        let strategy = try StagedElimination(parsing: s.stages)
        let n = Swift.min(s.images, dataset.count), classes = dataset.classNames.count
        let shape = [1, model.config.inChannels, dataset.height, dataset.width]

        // The eps rows both sides use: one per timestep of the largest stage (the probes per image).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diffclass-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let noiseURL = folder.appendingPathComponent("eps.safetensors")
        var g = RandomGenerator(seed: 4)
        try Safetensors.write(["eps": Tensor.randn([strategy.maxSamples] + shape.dropFirst(), generator: &g)], to: noiseURL)

        let timed = TimedPredictor(model)
        var options = ClassifierOptions()
        options.batchSize = s.batchSize
        let classifier = try Classifier(model: timed, schedule: schedule, conditions: Array(0..<classes), strategy: strategy,
                                        options: options, noiseFile: try FileNoise(url: noiseURL))
        // Warm-up (untimed): one forward pass at the batch size, as the PyTorch side does.
        let warm = Swift.min(s.batchSize, classes * (strategy.stages.first?.samples ?? 1))
        _ = Autograd.noGrad {
            model.predict(dataset.images([0]).expanded(to: [warm] + shape.dropFirst()),
                          timesteps: Array(repeating: 500, count: warm), conditions: Tensor.zeros([warm]))
        }
        log("  classifier: \(n) images, stages \(s.stages), batch \(s.batchSize), \(Engine.threads) threads, \(s.rounds) rounds")
        let labels = Array(dataset.labels[0..<n])
        let torchReady = torchUnavailable(s)
        var result: ClassifierBenchmarkResult?
        var ours: [(seconds: Double, cpu: Double)] = [], theirs: [ReferenceAnswer] = []
        var firstRound: (predictions: [Int], means: [[Double?]]) = ([], [])
        for round in 0..<Swift.max(1, s.rounds) {
            // Ours: every image, timed as a whole.
            var predictions: [Int] = [], means: [[Double?]] = [], calls = 0
            timed.nanoseconds = 0
            let cpu0 = cpuSeconds(), t0 = DispatchTime.now().uptimeNanoseconds
            for i in 0..<n {
                let c = try classifier.classify(dataset.images([i]), imageIndex: i)
                predictions.append(c.prediction)
                means.append(c.meanErrors)
                calls += c.calls
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, cpu = cpuSeconds() - cpu0
            ours.append((seconds, cpu))
            log(String(format: "  round %d: ours %.3f images/s (%.2f s)", round + 1, Double(n) / seconds, seconds))
            if result == nil {
                let accuracy = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(n)
                result = ClassifierBenchmarkResult(images: n, stages: s.stages, batchSize: s.batchSize, threads: Engine.threads,
                                                   callsPerImage: Double(calls) / Double(n), accuracy: accuracy, seconds: seconds,
                                                   cpuSeconds: cpu, imagesPerSecond: Double(n) / seconds,
                                                   forwardFraction: Double(timed.nanoseconds) / 1e9 / seconds)
                result?.torchSkipped = torchReady
                firstRound = (predictions, means)
            }
            // PyTorch's, right after.
            guard torchReady == nil, result?.torchSkipped == nil else { continue }
            result?.torchSkipped = referenceRound(s, round: round, images: n, noise: noiseURL, folder: folder, into: &theirs, log: log)
        }
        guard var result else { throw BenchmarkFailure(message: "no classifier round ran") }
        let oursSeconds = ours.map(\.seconds), oursCPU = ours.map(\.cpu)
        result.seconds = median(oursSeconds)
        result.cpuSeconds = median(oursCPU)
        result.imagesPerSecond = Double(n) / result.seconds
        guard let answer = theirs.first, theirs.count == ours.count else { return result }
        result.rounds = zip(oursSeconds, theirs).map { [$0, $1.seconds] }
        result.torch = answer.torch
        result.torchSeconds = median(theirs.map(\.seconds))
        result.torchImagesPerSecond = Double(n) / result.torchSeconds!
        result.speedupOverTorch = median(zip(oursSeconds, theirs).map { $1.seconds / $0 })
        if theirs.allSatisfy({ $0.cpu_seconds != nil }) {
            result.torchCPUSeconds = median(theirs.map { $0.cpu_seconds! })
            result.cpuSpeedupOverTorch = median(zip(oursCPU, theirs).map { $1.cpu_seconds! / $0 })
        }
        result.torchAccuracy = answer.accuracy
        let (predictions, means) = firstRound
        result.predictionsAgree = theirs.allSatisfy { $0.predictions == predictions }
        var worst = 0.0, complete = answer.mean_errors.count == n
        for (ours, theirs) in zip(means, answer.mean_errors) {
            guard ours.count == theirs.count else { complete = false; continue }
            for (a, b) in zip(ours, theirs) {
                switch (a, b) {
                case (nil, nil): break
                case let (a?, b?): worst = Swift.max(worst, abs(a - b) / Swift.max(abs(a), abs(b), .leastNormalMagnitude))
                default: complete = false
                }
            }
        }
        result.maxRelativeDifference = worst
        result.matches = complete && result.predictionsAgree == true && worst <= s.tolerance
        return result
    }

    struct ReferenceAnswer: Decodable {
        let torch: String
        let predictions: [Int]
        let mean_errors: [[Double?]]
        let accuracy: Double
        let seconds: Double
        let cpu_seconds: Double?
        let images_per_second: Double
        let calls: Int?
    }

    /// One timed PyTorch round: appends its answer to `answers` and logs it, or returns why it failed.
    static func referenceRound(_ s: ClassifierBenchmarkSettings, round: Int, images: Int, noise: URL, stages: String? = nil,
                               folder: URL, into answers: inout [ReferenceAnswer], log: (String) -> Void) -> String? {
        switch runReference(s, images: images, threads: Engine.threads, noise: noise, stages: stages,
                            output: folder.appendingPathComponent("torch.json")) {
        case .failure(let e):
            return e.message
        case .success(let answer):
            answers.append(answer)
            log(String(format: "  round %d: torch %.3f images/s (%.2f s)", round + 1, answer.images_per_second, answer.seconds))
            return nil
        }
    }

    /// Runs tools/reference_classifier.py --bench and reads its JSON answer.
    static func runReference(_ s: ClassifierBenchmarkSettings, images: Int, threads: Int, noise: URL, stages: String? = nil,
                             output: URL) -> Result<ReferenceAnswer, BenchmarkFailure> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [s.python, s.referenceScript, "--bench", "--model", s.model, "--noise", noise.path,
                             "--n-images", String(images), "--stages", stages ?? s.stages, "--batch-size", String(s.batchSize),
                             "--threads", String(threads), "--out", output.path]
        let stderr = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        do { try process.run() } catch {
            return .failure(BenchmarkFailure(message: "cannot start \(s.python): \(error)"))
        }
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: err, as: UTF8.self).split(separator: "\n").suffix(2).joined(separator: " | ")
            let hint = text.contains("No module named") ? " (no Python with torch and diffusers: pip install torch diffusers safetensors, or --python PATH)" : ""
            return .failure(BenchmarkFailure(message: "\(s.python) \(s.referenceScript) exited with \(process.terminationStatus): \(text)\(hint)"))
        }
        guard let data = try? Data(contentsOf: output), let answer = try? JSONDecoder().decode(ReferenceAnswer.self, from: data) else {
            return .failure(BenchmarkFailure(message: "\(s.referenceScript) wrote no valid JSON"))
        }
        return .success(answer)
    }
}
