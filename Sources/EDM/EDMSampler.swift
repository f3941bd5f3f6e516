import Foundation
import TensorEngine

/// EDM's deterministic-or-stochastic Heun sampler (`edm_sampler` in EDM's generate.py,
/// Algorithm 2 of Karras et al. 2022):
///
///     t_i = (s_max^(1/rho) + i / (N - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho,  t_N = 0
///     x_0 = latents * t_0
///     t_hat = t_i (1 + gamma),  x_hat = x_i + sqrt(t_hat^2 - t_i^2) S_noise n
///     d = (x_hat - D(x_hat; t_hat)) / t_hat,  x_{i+1} = x_hat + (t_{i+1} - t_hat) d
///     (i < N - 1) d' = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1},  x_{i+1} = x_hat + (t_{i+1} - t_hat) (d + d') / 2
///
/// with gamma = min(S_churn / N, sqrt 2 - 1) for S_min <= t_i <= S_max, else 0. Matches EDM:
/// the state and the step arithmetic in float64, the network called in float32 (as EDM's precond
/// casts), sigma_min / sigma_max clamped to the preconditioning's range. Differs: the churn noise
/// comes from our seeded generator, not torch's.
public struct EDMSampler {
    public var steps = 18
    public var sigmaMin = 0.002
    public var sigmaMax = 80.0
    public var rho = 7.0
    public var sChurn = 0.0
    public var sMin = 0.0
    public var sMax = Double.infinity
    public var sNoise = 1.0
    public init() {}

    /// The noise levels t_0 > ... > t_{N-1} > t_N = 0 for `model`'s supported range.
    public func noiseLevels(for model: EDMModel) -> [Double] {
        let lo = Swift.max(sigmaMin, model.preconditioning.sigmaMin), hi = Swift.min(sigmaMax, model.preconditioning.sigmaMax)
        let a = Foundation.pow(hi, 1 / rho), b = Foundation.pow(lo, 1 / rho)
        var t = (0..<steps).map { i in Foundation.pow(a + Double(i) / Double(Swift.max(steps - 1, 1)) * (b - a), rho) }
        t.append(0)
        return t
    }

    /// Samples from `latents` (standard normal, [N, C, H, W]) with one-hot `classLabels`
    /// ([N, label_dim], nil for the unconditional case). `progress(i)` after step i (1-based).
    public func sample(model: EDMModel, latents: Tensor, classLabels: Tensor?, generator: inout RandomGenerator,
                       progress: (Int) -> Void = { _ in }) -> Tensor {
        let shape = latents.shape
        let t = noiseLevels(for: model)
        var x = latents.scalars.map { Double($0) * t[0] }
        func denoise(_ x: [Double], _ sigma: Double) -> [Double] {
            let input = Tensor(shape: shape, x.map { Float($0) })
            return model(input, sigma: [Float(sigma)], classLabels: classLabels).scalars.map(Double.init)
        }
        for i in 0..<steps {
            let tCur = t[i], tNext = t[i + 1]
            let gamma = (sMin <= tCur && tCur <= sMax) ? Swift.min(sChurn / Double(steps), 2.0.squareRoot() - 1) : 0
            let tHat = tCur + gamma * tCur
            var xHat = x
            if gamma > 0 {
                let noise = Tensor.randn(shape, generator: &generator).scalars
                let scale = (tHat * tHat - tCur * tCur).squareRoot() * sNoise
                for k in xHat.indices { xHat[k] += scale * Double(noise[k]) }
            }
            let denoised = denoise(xHat, tHat)
            let dCur = zip(xHat, denoised).map { ($0 - $1) / tHat }
            x = zip(xHat, dCur).map { $0 + (tNext - tHat) * $1 }
            if i < steps - 1 {
                let again = denoise(x, tNext)
                for k in x.indices {
                    let dPrime = (x[k] - again[k]) / tNext
                    x[k] = xHat[k] + (tNext - tHat) * (0.5 * dCur[k] + 0.5 * dPrime)
                }
            }
            progress(i + 1)
        }
        return Tensor(shape: shape, x.map { Float($0) })
    }
}
