import Diffusion
import Foundation
import NeuralNetworks

/// Weights w(t) applied to each eps-space error before a class's errors are averaged (and
/// before paired differences are tested). Every weighting is scaled so that its mean over
/// t = 0..<T is 1, which keeps error magnitudes (and a fitted temperature) comparable across
/// weightings; the scale does not change any ranking.
///
/// - `uniform`: w = 1, the public Diffusion Classifier code (and the paper's best setting for SD).
/// - `exponential(rate)`: w ∝ exp(-rate t / T); rate 7 is Clark & Jaini's exp(-7t), t in [0, 1].
///   They weight the x0-prediction error; here the weight multiplies the eps-space error (which
///   is the x0 error times SNR(t) = abar/(1 - abar) for l2), so it is not their exact objective.
/// - `elbo`: the DDPM variational bound's weight on the eps-space squared error,
///   w(t) ∝ beta_t / (alpha_t (1 - abar_{t-1})) = SNR(t-1)/SNR(t) - 1 (Ho et al. 2020 L_{t-1}
///   with sigma_t^2 = the posterior variance, up to the constant 1/2; equivalently Kingma et al.'s
///   discrete-time VDM weight). At t = 0 abar_{-1} = 1 makes it infinite (the bound uses a decoder
///   term there), so w(0) is set to w(1). Exact for l2; for l1/huber it is only a heuristic.
/// - `rdc(density)`: the Robust Diffusion Classifier's weight on the x0-space error of an EDM
///   denoiser, w(s) = (s^2 + sd^2) / (s sd)^2 * p(s) * ds (sd = sigma_data = 0.5, p a
///   `SigmaDensity`, ds the spacing of the noise levels), moved to eps-space: the eps-space
///   error at level s is the x0-space error over s^2 (`EDMNoisePredictor`), so the weight is
///   T s^2 w(s) (s = `NoiseSchedule.sigma(t)`; ds the `SigmaGrid`'s spacing, or sigma(t+1) -
///   sigma(t) on other schedules, the last repeated). Not scaled to mean 1: the factor T makes the
///   mean weighted error over all T levels RDC's sum L(x, y) = sum_s w(s) mean (D - x0)^2, so
///   logits -L and p(y|x) = softmax(-L) are the published ones at tau = 1.
public enum TimestepWeighting: Equatable, Sendable {
    case uniform
    case exponential(rate: Double)
    case elbo
    case rdc(SigmaDensity)

    /// RDC's sigma_data in its loss weight (`EDMEulerIntegralDC`), whatever the preconditioning.
    public static let rdcSigmaData = 0.5

    /// The rate of `exp` without one: Clark & Jaini's exp(-7t).
    public static let defaultRate = 7.0

    /// Parses "uniform", "exp" (rate 7), "exp:RATE", "elbo" or "rdc:paper" / "rdc:code" ("rdc" is
    /// rdc:paper); errors name `Setting.weighting`.
    public init(parsing text: String) throws {
        switch text {
        case "uniform": self = .uniform
        case "elbo": self = .elbo
        case "exp": self = .exponential(rate: Self.defaultRate)
        case "rdc": self = .rdc(.paper)
        default:
            if text.hasPrefix("exp:"), let r = Double(text.dropFirst(4)), r.isFinite {
                self = .exponential(rate: r)
            } else if text.hasPrefix("rdc:"), let d = SigmaDensity(rawValue: String(text.dropFirst(4))) {
                self = .rdc(d)
            } else {
                throw ClassifierError(.weighting, "unknown weighting '\(text)' (uniform, exp, exp:RATE, elbo, rdc:paper, rdc:code)")
            }
        }
    }

    /// The canonical text form, recorded in settings (parses back to the same value): "exp" for
    /// the default rate, "exp:3" for an integral rate, "exp:0.5" otherwise.
    public var name: String {
        switch self {
        case .uniform: return "uniform"
        case .elbo: return "elbo"
        case .rdc(let d): return "rdc:\(d.rawValue)"
        case .exponential(let r):
            if r == Self.defaultRate { return "exp" }
            return r == r.rounded() && Swift.abs(r) < 1e15 ? "exp:\(Int(r))" : "exp:\(r)"
        }
    }

    /// w(t) for t = 0..<T, scaled to mean 1 (`rdc`: see there).
    public func weights(schedule: NoiseSchedule) -> [Double] {
        let T = schedule.numTrainTimesteps
        var w: [Double]
        switch self {
        case .uniform:
            return [Double](repeating: 1, count: T)
        case .rdc(let density):
            let sd = Self.rdcSigmaData
            let s = (0..<T).map(schedule.sigma)
            return (0..<T).map { t in
                let ds = schedule.sigmaGrid?.spacing ?? (T == 1 ? 1 : (t + 1 < T ? s[t + 1] - s[t] : s[t] - s[t - 1]))
                let x = s[t]
                return Double(T) * x * x * (x * x + sd * sd) / ((x * sd) * (x * sd)) * density.value(x) * ds
            }
        case .exponential(let rate):
            w = (0..<T).map { Foundation.exp(-rate * Double($0) / Double(T)) }
        case .elbo:
            let abar = schedule.alphasCumprod, beta = schedule.betas
            w = (0..<T).map { t in
                let s = Swift.max(t, 1)
                guard s < T else { return 1 }
                return beta[s] / ((1 - beta[s]) * (1 - abar[s - 1]))
            }
        }
        let mean = w.reduce(0, +) / Double(T)
        return w.map { $0 / mean }
    }

    /// Refuses weights that are not finite over `range`, and exponential weights that underflow
    /// to 0 there (a large `exp:RATE`): a weight of 0 drops the timestep's errors, and with every
    /// used weight 0 each class scores 0 and the first class always wins.
    public func checkWeights(_ w: [Double], range: Range<Int>) throws {
        for t in range where t < w.count {
            guard w[t].isFinite else {
                throw ClassifierError(.weighting, "'\(name)' gives timestep \(t) the weight \(w[t]); expected finite weights (a smaller rate)")
            }
            if case .exponential = self, w[t] <= 0 {
                throw ClassifierError(.weighting, "'\(name)' makes the weight of timestep \(t) underflow to 0; use a rate of at most about 700")
            }
        }
    }
}
