import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// `RUN/analysis.json`: the paper's two findings measured on one model (`diffclass analyze`).
public struct AnalysisResult: Codable, Sendable, Equatable {
    /// Accuracy when every class is scored at one timestep t only (one shared eps).
    public struct SingleTimestep: Codable, Sendable, Equatable {
        public var t: Int
        public var accuracy: Double
        public var stderr: Double
        public init(t: Int, accuracy: Double, stderr: Double) {
            self.t = t
            self.accuracy = accuracy
            self.stderr = stderr
        }
    }

    /// Accuracy from the first `count` timesteps, with shared versus independent noise.
    public struct TimestepCount: Codable, Sendable, Equatable {
        public var count: Int
        public var sharedAccuracy: Double
        public var sharedStderr: Double
        public var independentAccuracy: Double
        public var independentStderr: Double
        public init(count: Int, sharedAccuracy: Double, sharedStderr: Double, independentAccuracy: Double, independentStderr: Double) {
            self.count = count
            self.sharedAccuracy = sharedAccuracy
            self.sharedStderr = sharedStderr
            self.independentAccuracy = independentAccuracy
            self.independentStderr = independentStderr
        }
    }

    public var model: String
    public var dataset: String
    public var split: String
    public var n: Int
    public var classes: Int
    public var seed: UInt64
    public var timesteps: Int
    public var singleTimestep: [SingleTimestep]
    public var timestepCounts: [TimestepCount]
    /// The timesteps of the count curve, in the order their prefixes are taken.
    public var countTimesteps: [Int]
    /// U-Net forward passes in all.
    public var calls: Int

    public init(model: String, dataset: String, split: String, n: Int, classes: Int, seed: UInt64, timesteps: Int,
                singleTimestep: [SingleTimestep], timestepCounts: [TimestepCount], countTimesteps: [Int], calls: Int) {
        self.model = model
        self.dataset = dataset
        self.split = split
        self.n = n
        self.classes = classes
        self.seed = seed
        self.timesteps = timesteps
        self.singleTimestep = singleTimestep
        self.timestepCounts = timestepCounts
        self.countTimesteps = countTimesteps
        self.calls = calls
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// Writes pretty JSON with snake_case keys (atomically).
    public func write(to url: URL) throws {
        do { try AnalysisResult.encoder.encode(self).write(to: url, options: .atomic) } catch {
            throw ClassifierError("\(url.path): cannot write the analysis (\(error.localizedDescription))")
        }
    }

    /// Reads `analysis.json`; errors name the file.
    public static func load(_ url: URL) throws -> AnalysisResult {
        do {
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            return try d.decode(AnalysisResult.self, from: try Data(contentsOf: url))
        } catch {
            throw ClassifierError("\(url.path): not an analysis file (\(error))")
        }
    }
}

/// Reproduces Li et al.'s timestep findings on a model:
/// (a) accuracy from a single timestep as a function of t: each image gets one probe per t of
///     `singleTimesteps`, all classes scored on its shared eps; prediction = argmin over classes
///     of the error at that probe alone;
/// (b) accuracy against the number of timesteps, shared versus independent noise: the
///     `max(counts)`-point grid, ordered so every prefix spreads over 0..<T (`spreadOrder`), is
///     scored once per image with shared eps and once with independent eps per class
///     (`ClassifierOptions.independentNoise`); count n uses the first n probes.
/// Loss l2, uniform weighting. Results depend only on (model, images, indices, seed).
public struct TimestepAnalysis {
    public var singleTimesteps: [Int]
    public var counts: [Int]
    public var batchSize = 256
    public var seed: UInt64 = 0

    /// `points` evenly spaced single timesteps (the grid of that size) and the given counts.
    public init(T: Int, points: Int = 20, counts: [Int] = [1, 2, 5, 10, 20, 50], seed: UInt64 = 0) throws {
        guard points >= 1, points <= T else { throw ClassifierError(.points, "\(points) single timesteps do not fit in 0..<\(T)") }
        guard let m = counts.max(), counts.allSatisfy({ $0 >= 1 }), m <= T else {
            throw ClassifierError(.counts, "timestep counts \(counts) must lie in 1...\(T)")
        }
        singleTimesteps = TimestepGrid.grid(T: T, maxN: points)
        self.counts = counts.sorted()
        self.seed = seed
    }

    /// The indices 0..<n ordered so that every prefix spreads evenly: floor(n * r(k)) for the
    /// base-2 radical inverse r(k), k = 0, 1, 2..., first occurrences only.
    public static func spreadOrder(_ n: Int) -> [Int] {
        var seen = Set<Int>(), order: [Int] = []
        var k: UInt64 = 0
        while order.count < n {
            var r = 0.0, f = 0.5, x = k
            while x > 0 { r += Double(x & 1) * f; f /= 2; x >>= 1 }
            let j = Swift.min(Int(r * Double(n)), n - 1)
            if seen.insert(j).inserted { order.append(j) }
            k += 1
        }
        return order
    }

    /// Argmin over classes (first on ties).
    static func argmin(_ v: [Double]) -> Int { v.indices.min { (v[$0], $0) < (v[$1], $1) }! }

    static func accuracy(_ correct: Int, _ n: Int) -> (Double, Double) {
        let p = n == 0 ? 0 : Double(correct) / Double(n)
        return (p, n == 0 ? 0 : (p * (1 - p) / Double(n)).squareRoot())
    }

    /// Runs the analysis over `images` ([1, C, H, W] each) with `labels` (candidate indices into
    /// `conditions`); `indices` are the dataset indices seeding each image's noise.
    public func run(model: ConditionalNoisePredictor, schedule: NoiseSchedule, conditions: [Int], images: [Tensor], labels: [Int],
                    indices: [Int], progress: (Int, Int) -> Void = { _, _ in }) throws -> (singleTimestep: [AnalysisResult.SingleTimestep], timestepCounts: [AnalysisResult.TimestepCount], countTimesteps: [Int], calls: Int) {
        precondition(images.count == labels.count && labels.count == indices.count)
        let grid = TimestepGrid.grid(T: schedule.numTrainTimesteps, maxN: counts.max()!)
        let countTimesteps = TimestepAnalysis.spreadOrder(grid.count).map { grid[$0] }
        func classifier(independent: Bool) throws -> Classifier {
            var o = ClassifierOptions()
            o.batchSize = batchSize
            o.seed = seed
            o.independentNoise = independent
            return try Classifier(model: model, schedule: schedule, conditions: conditions,
                                  strategy: FixedTimesteps(sampler: .explicit(countTimesteps)), options: o)
        }
        let shared = try classifier(independent: false), independent = try classifier(independent: true)
        let K = conditions.count
        var singleCorrect = [Int](repeating: 0, count: singleTimesteps.count)
        var sharedCorrect = [Int](repeating: 0, count: counts.count), independentCorrect = sharedCorrect
        var calls = 0
        for (i, x0) in images.enumerated() {
            // Shared noise: the single-timestep probes, then the count curve's probes.
            let s = try shared.makeScorer(x0, imageIndex: indices[i])
            let single = s.addProbes(timesteps: singleTimesteps)
            let countProbes = s.addProbes(timesteps: countTimesteps)
            try s.score(candidates: Array(0..<K), probes: single + countProbes)
            // Independent noise: the count curve's probes, each class its own eps.
            let u = try independent.makeScorer(x0, imageIndex: indices[i])
            try u.score(candidates: Array(0..<K), probes: u.addProbes(timesteps: countTimesteps))
            calls += s.calls + u.calls
            // Errors by (class, probe id); probe ids are in scoring order for every class.
            let se = (0..<K).map { c in Dictionary(uniqueKeysWithValues: zip(s.probeIDs[c], s.errors[c])) }
            let ue = (0..<K).map { c in Dictionary(uniqueKeysWithValues: zip(u.probeIDs[c], u.errors[c])) }
            for (j, id) in single.enumerated() where TimestepAnalysis.argmin((0..<K).map { se[$0][id]! }) == labels[i] {
                singleCorrect[j] += 1
            }
            let uProbes = Array(0..<countTimesteps.count)
            for (j, n) in counts.enumerated() {
                let mean = { (e: [[Int: Double]], ids: ArraySlice<Int>) in (0..<K).map { c in ids.map { e[c][$0]! }.reduce(0, +) } }
                if TimestepAnalysis.argmin(mean(se, countProbes.prefix(n))) == labels[i] { sharedCorrect[j] += 1 }
                if TimestepAnalysis.argmin(mean(ue, uProbes.prefix(n))) == labels[i] { independentCorrect[j] += 1 }
            }
            progress(i + 1, images.count)
        }
        let n = images.count
        let singleOut = zip(singleTimesteps, singleCorrect).map { t, c in
            let (a, e) = TimestepAnalysis.accuracy(c, n)
            return AnalysisResult.SingleTimestep(t: t, accuracy: a, stderr: e)
        }
        let countOut = counts.indices.map { j in
            let (a, e) = TimestepAnalysis.accuracy(sharedCorrect[j], n), (b, f) = TimestepAnalysis.accuracy(independentCorrect[j], n)
            return AnalysisResult.TimestepCount(count: counts[j], sharedAccuracy: a, sharedStderr: e, independentAccuracy: b, independentStderr: f)
        }
        return (singleOut, countOut, countTimesteps, calls)
    }
}
