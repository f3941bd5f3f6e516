import NeuralNetworks
import TensorEngine

/// The public Diffusion Classifier code's adaptive schedule (`--to_keep`, `--n_samples`;
/// `--stages keep:n,keep:n,...` here): matches its evenly spaced grid and stage semantics.
///
/// The grid has max_n = max(n_s) timesteps (`TimestepGrid.grid`). Stage s takes the centred
/// strided sub-grid of n_s timesteps, drops those already evaluated, scores every remaining class
/// on the new ones (each new timestep gets the next noise draw, the public code's
/// `noise_idxs` numbering), then ranks the remaining classes by their mean error over every
/// timestep they have seen and keeps the best `keep_s`, in rank order.
///
/// Differs from the public code in: ties in the ranking go to the class that was ranked first
/// (its `torch.topk` leaves tie order unspecified); a `keep` above the number of remaining
/// classes keeps them all (topk would raise); the last stage may keep more than one class (the
/// prediction is then the survivor of lowest mean error; the public code asserts one).
public struct StagedElimination: ClassificationStrategy {
    public struct Stage: Equatable, Sendable {
        public let keep: Int
        public let samples: Int
        public init(keep: Int, samples: Int) { self.keep = keep; self.samples = samples }
    }

    public let stages: [Stage]

    /// The public code's published schedule: keep 5 classes after 50 timesteps, then 1 after 500.
    public static let defaultStages = [Stage(keep: 5, samples: 50), Stage(keep: 1, samples: 500)]

    public init(stages: [Stage] = StagedElimination.defaultStages) { self.stages = stages }

    /// Parses "5:50,1:500" (keep:timesteps per stage); errors name `Setting.stages`.
    public init(parsing text: String) throws {
        var stages: [Stage] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: ":", omittingEmptySubsequences: false)
            guard kv.count == 2, let keep = Int(kv[0]), let n = Int(kv[1]), keep >= 1, n >= 1 else {
                throw ClassifierError("\(Setting.stages): '\(part)' is not keep:timesteps with positive integers (e.g. 5:50,1:500)")
            }
            stages.append(Stage(keep: keep, samples: n))
        }
        self.init(stages: stages)
    }

    /// The text form "keep:n,keep:n".
    public var text: String { stages.map { "\($0.keep):\($0.samples)" }.joined(separator: ",") }

    public var maxSamples: Int { stages.map(\.samples).max() ?? 0 }

    public func validate(range: Range<Int>, classes: Int) throws {
        guard !stages.isEmpty else { throw ClassifierError(.stages, "no stages") }
        for (a, b) in zip(stages, stages.dropFirst()) where b.keep > a.keep {
            throw ClassifierError(.stages, "a stage keeps \(b.keep) classes after one that kept \(a.keep); keep counts must not grow")
        }
        guard maxSamples <= range.count else {
            throw ClassifierError(.stages, "\(maxSamples) timesteps do not fit in the range \(range.lowerBound):\(range.upperBound) (\(range.count) timesteps)")
        }
    }

    public func run(_ scorer: ProbeScorer, range: Range<Int>, generator: inout RandomGenerator) throws -> [Int] {
        let grid = TimestepGrid.grid(range: range, maxN: maxSamples)
        var remaining = Array(0..<scorer.candidateCount)
        var evaluated = Set<Int>()
        for stage in stages {
            let current = TimestepGrid.stage(grid, n: stage.samples).filter { !evaluated.contains($0) }
            evaluated.formUnion(current)
            let ids = scorer.addProbes(timesteps: current)
            try scorer.score(candidates: remaining, probes: ids)
            let means = remaining.map { scorer.meanError($0) ?? .infinity }
            let ranked = remaining.indices.sorted { (means[$0], $0) < (means[$1], $1) }
            remaining = ranked.prefix(Swift.min(stage.keep, remaining.count)).map { remaining[$0] }
        }
        return remaining
    }
}
