import Foundation
import NeuralNetworks
import TensorEngine

extension Setting {
    /// The grid of noise levels a continuous-noise-level model (EDM's D(x; sigma)) is scored on.
    public static let sigmas = Setting("sigmas")
}

/// A grid of noise levels for a network indexed by a continuous noise level sigma (EDM's
/// denoiser D(x0 + sigma eps; sigma)), as the Robust Diffusion Classifier integrates its loss:
/// the N levels `linspace(A, B, N + 1)` minus its last point, A + k (B - A) / N for k = 0..<N,
/// each standing for the interval of width ds = (B - A) / N above it (RDC's
/// `torch.linspace(1e-4, 3, 1001)[:-1]` with `dt` its differences).
///
/// The classifiers see the grid as a `NoiseSchedule` over timesteps 0..<N (`schedule`), with
/// abar_k = 1 / (1 + sigma_k^2): then x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps is
/// (x0 + sigma_k eps) / sqrt(1 + sigma_k^2), EDM's noisy sample scaled to unit signal, and a
/// predictor over the grid maps timestep k to sigma_k.
///
/// Differs from RDC's grid only in arithmetic: levels are computed in Float64 (torch's linspace
/// is float32), a difference below 1e-7 relative.
public struct SigmaGrid: Equatable, Sendable, CustomStringConvertible {
    public var lower: Double
    public var upper: Double
    public var count: Int

    /// RDC's public code: linspace(1e-4, 3, 1001) minus its last point.
    public static let rdc = SigmaGrid(lower: 1e-4, upper: 3, count: 1000)

    public init(lower: Double, upper: Double, count: Int) {
        self.lower = lower
        self.upper = upper
        self.count = count
    }

    /// "A:B:N" with 0 < A < B and N >= 1; errors name `Setting.sigmas`.
    public init(parsing text: String) throws {
        let p = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 3, let a = Double(p[0]), let b = Double(p[1]), let n = Int(p[2]), a.isFinite, b.isFinite else {
            throw SettingError(.sigmas, "'\(text)' is not A:B:N (e.g. 1e-4:3:1000)")
        }
        guard a > 0, a < b else { throw SettingError(.sigmas, "'\(text)': need 0 < A < B") }
        guard n >= 1, n <= 1_000_000 else { throw SettingError(.sigmas, "'\(text)': need 1 <= N <= 1000000 levels") }
        self.init(lower: a, upper: b, count: n)
    }

    /// "A:B:N", which `init(parsing:)` reads back to the same grid (recorded in settings).
    public var description: String { "\(lower):\(upper):\(count)" }

    /// ds = (B - A) / N.
    public var spacing: Double { (upper - lower) / Double(count) }

    /// sigma_k = A + k ds, k = 0..<N.
    public var levels: [Double] { (0..<count).map { lower + Double($0) * spacing } }

    /// The grid as a schedule over timesteps 0..<N (abar_k = 1 / (1 + sigma_k^2)), for a
    /// predictor of `prediction` type (eps for EDM's denoisers wrapped as eps predictors).
    public func schedule(prediction: PredictionType = .epsilon) -> NoiseSchedule {
        NoiseSchedule(sigmaGrid: self, prediction: prediction)
    }
}

/// A network indexed by a continuous noise level in variance-exploding form, such as EDM's
/// denoiser: `denoise(x0 + sigma eps, sigmas:, conditions:)` is its estimate of x0 at any sigma,
/// not only at the levels of a schedule. Likelihood maximization draws sigma continuously from
/// such a network (RDC's sigma ~ U[0.4, 0.6]). Conditions are as for `ConditionalNoisePredictor`.
public protocol NoiseLevelDenoiser: AnyObject {
    /// D(x; sigma, condition) for `noisy` [N, C, H, W], one sigma per item; recorded.
    func denoise(_ noisy: Tensor, sigmas: [Float], conditions: Tensor?) -> Tensor
}
