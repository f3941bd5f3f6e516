import DiffusionClassifier
import FuzzSupport
import NeuralNetworks

/// A `ProbeScorer` whose errors depend only on (class, timestep), like a recorded run's, so that a
/// fuzzed strategy runs the whole elimination loop without a model: a pseudo-random error in
/// [0, 1) plus 0.1 per class number, so that elimination rules find classes to drop.
public final class SyntheticScorer: ProbeScorer {
    public override func score(candidates: [Int], probes ids: [Int]) throws {
        checkUnseen(candidates: candidates, probes: ids)
        for c in candidates {
            for id in ids {
                let t = probes[id].timestep
                record(candidate: c, probe: id, error: 0.1 * Double(c) + Double((c * 7919 + t * 104729) % 1000) / 1000)
            }
        }
    }
}

public enum FuzzStrategy {
    /// The largest run the targets execute (the parsers accept more; running it would only time out):
    /// classes x probes x rounds (a sequential rule reads every probe so far after each round).
    public static let maxClasses = 1000, maxTimesteps = 100_000, maxProbes = 10_000, maxWork = 20_000_000

    /// Checks `strategy` as `Classifier` does (the range a non-empty part of 0..<T, then the
    /// strategy's own checks) and runs it on a synthetic scorer of `classes` candidates. A refusal
    /// must be a `SettingNamingError` naming one of `settings`; an accepted strategy must give a
    /// prediction among its survivors, survivors among the classes and probabilities that sum to 1.
    /// Runs larger than the bounds above are skipped (after validation); `rounds`: how many times
    /// the strategy reads all its probes so far (1, or probes / test_every for a sequential rule).
    public static func run(_ strategy: ClassificationStrategy, range: Range<Int>, timesteps T: Int, classes: Int, probes: Int,
                           rounds: Int = 1, refusalsName settings: [Setting]) {
        do {
            guard range.lowerBound >= 0, range.upperBound <= T, !range.isEmpty else { return }
            try strategy.validate(range: range, classes: classes)
        } catch {
            FuzzCheck.errorNames(error, settings: settings)
            return
        }
        guard classes >= 1, classes <= maxClasses, T <= maxTimesteps, probes <= maxProbes,
              classes * probes * max(rounds, 1) <= maxWork else { return }
        let scorer = SyntheticScorer(candidateCount: classes, weights: [Double](repeating: 1, count: T))
        do {
            let c = try Classifier.run(strategy, on: scorer, range: range, seed: 1, imageIndex: 0, tau: 1)
            FuzzCheck.require(!c.survivors.isEmpty && c.survivors.allSatisfy { (0..<classes).contains($0) },
                              "survivors \(c.survivors) are not among the \(classes) classes")
            FuzzCheck.require(c.survivors.contains(c.prediction), "prediction \(c.prediction) is not a survivor")
            let total = c.probabilities.reduce(0, +)
            FuzzCheck.require(c.probabilities.count == classes && abs(total - 1) < 1e-9, "probabilities sum to \(total)")
        } catch {
            FuzzCheck.require(false, "a validated strategy failed on the synthetic scorer: \(error)")
        }
    }
}
