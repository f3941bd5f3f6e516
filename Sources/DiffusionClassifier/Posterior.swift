import Foundation

/// The classifier's class probabilities: softmax(-tau * error) over ALL classes, where the
/// classifier passes each class's paired mean error (`ProbeScorer.pairedMeanErrors`: a class
/// pruned early is compared with the prediction on the probes they share). Uniform prior, as in the paper's
/// p(c|x) ∝ exp(-E[error]). tau = 1 reproduces the public code's nearly uniform softmax; a tau
/// fitted on held-out data (calibration) makes the probabilities meaningful. Unlike the public
/// code, pruned classes keep a (small) probability.
public enum Posterior {
    /// softmax(-tau * errors), computed stably in Float64. A nil error (a class never scored)
    /// gets probability 0.
    public static func probabilities(meanErrors: [Double?], tau: Double) -> [Double] {
        let logits = meanErrors.map { $0.map { -tau * $0 } ?? -.infinity }
        guard let top = logits.max(), top.isFinite else {
            return [Double](repeating: 1 / Double(Swift.max(logits.count, 1)), count: logits.count)
        }
        let e = logits.map { exp($0 - top) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }
}
