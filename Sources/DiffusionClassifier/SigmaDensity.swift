import Foundation

/// The density p(sigma) of the Robust Diffusion Classifier's loss weight (EDM's training
/// distribution of noise levels, ln sigma ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2),
/// by name:
///
/// - `paper`: the log-normal density of the paper,
///   p(s) = exp(-(ln s - P_mean)^2 / (2 P_std^2)) / (s P_std sqrt(2 pi)).
/// - `code`: the public code's expression (`EDMEulerIntegralDC.p_x`),
///   `1 / (x * P_std * sqrt(2 pi)) * exp(-((log(x) - P_mean) ** 2) / 2 * P_std ** 2)`: by operator
///   precedence the exponent is -(ln s - P_mean)^2 * P_std^2 / 2, not divided by P_std^2. With
///   P_std = 1.2 the exponent is 1.44^2 = 2.07 times the paper's, so the weight is a narrower bump
///   around sigma = e^-1.2 = 0.30 (in ln sigma a Gaussian of standard deviation 1 / 1.2 = 0.83
///   instead of 1.2), and not a probability density: its integral is 1 / P_std^2 = 0.69. On RDC's
///   grid 1e-4:3:1000 the paper's density puts 19% of its mass below sigma = 0.1, 68% in
///   [0.1, 1) and 14% above; the code's 9%, 83% and 7% (tools/make_rdc_fixtures.py prints these).
public enum SigmaDensity: String, Codable, CaseIterable, Sendable {
    case paper, code

    /// EDM's (and RDC's) P_mean and P_std.
    public static let pMean = -1.2, pStd = 1.2

    public func value(_ sigma: Double) -> Double {
        let l = Foundation.log(sigma) - Self.pMean, s = Self.pStd
        let front = 1 / (sigma * s * (2 * Double.pi).squareRoot())
        switch self {
        case .paper: return front * Foundation.exp(-(l * l) / (2 * s * s))
        case .code: return front * Foundation.exp(-(l * l) / 2 * s * s)
        }
    }
}
