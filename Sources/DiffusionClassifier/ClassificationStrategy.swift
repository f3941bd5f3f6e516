import NeuralNetworks
import TensorEngine

/// How an image's classes are scored and which remain in the running: a fixed set of timesteps,
/// the public code's staged schedule, or a sequential elimination rule. A strategy only asks the
/// scorer for probes and scores; the `Classifier` turns the scores into a prediction and
/// probabilities. New strategies (a custom sequential rule, say) conform to this protocol, or to
/// `EliminationRule` to reuse `SequentialElimination`'s loop.
public protocol ClassificationStrategy {
    /// Checks the settings against the timestep range and the number of classes; errors name the
    /// parameters (`Setting`).
    func validate(range: Range<Int>, classes: Int) throws
    /// Scores candidates 0..<scorer.candidateCount on `scorer` and returns the survivors (the
    /// candidates still in the running; the prediction is the survivor of lowest mean error).
    /// `generator` is the image's timestep generator (used only by random timestep samplers).
    func run(_ scorer: ProbeScorer, range: Range<Int>, generator: inout RandomGenerator) throws -> [Int]
}

/// Every class on the same timesteps (no elimination): the public code with one stage
/// (`--to_keep 1 --n_samples N`) when the sampler is `.grid(N)`.
public struct FixedTimesteps: ClassificationStrategy {
    public let sampler: TimestepSampler

    public init(sampler: TimestepSampler) { self.sampler = sampler }

    public func validate(range: Range<Int>, classes: Int) throws {
        try sampler.validate(range: range, count: .nTimesteps)
    }

    public func run(_ scorer: ProbeScorer, range: Range<Int>, generator: inout RandomGenerator) throws -> [Int] {
        let all = Array(0..<scorer.candidateCount)
        let ids = scorer.addProbes(timesteps: sampler.timesteps(range: range, generator: &generator))
        try scorer.score(candidates: all, probes: ids)
        return all
    }
}
