import Foundation
import TensorEngine

/// The forward (noising) process of a DDPM: betas, alphas and cumulative products for
/// t = 0..<T. Matches diffusers' DDPMScheduler for `beta_schedule` "linear", "scaled_linear" and
/// "squaredcos_cap_v2" (the Nichol & Dhariwal cosine schedule with max beta 0.999), and its
/// `add_noise` and `get_velocity`. Differs only in arithmetic: the schedule is computed in Float64
/// and rounded once (diffusers computes linspace and cumprod in float32), a difference below
/// 1e-6 relative.
public struct NoiseSchedule {
    public let config: SchedulerConfig
    public let betas: [Double]
    public let alphasCumprod: [Double]
    /// The noise levels when this is the schedule of a `SigmaGrid` (timestep k = level k), nil for DDPM schedules.
    public let sigmaGrid: SigmaGrid?
    public var prediction: PredictionType { PredictionType(rawValue: config.predictionType) ?? .epsilon }
    /// T: the number of training timesteps (diffusers' `num_train_timesteps`).
    public var numTrainTimesteps: Int { betas.count }

    public init(_ config: SchedulerConfig) {
        self.config = config
        let T = config.numTrainTimesteps
        var b = [Double](repeating: 0, count: T)
        switch config.betaSchedule {
        case "scaled_linear":
            let s0 = config.betaStart.squareRoot(), s1 = config.betaEnd.squareRoot()
            for i in 0..<T { let v = s0 + (s1 - s0) * Double(i) / Double(T - 1); b[i] = v * v }
        case "squaredcos_cap_v2":
            func alphaBar(_ t: Double) -> Double { let c = Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2); return c * c }
            for i in 0..<T {
                let t1 = Double(i) / Double(T), t2 = Double(i + 1) / Double(T)
                b[i] = Swift.min(1 - alphaBar(t2) / alphaBar(t1), 0.999)
            }
        default: // linear
            for i in 0..<T { b[i] = config.betaStart + (config.betaEnd - config.betaStart) * Double(i) / Double(T - 1) }
        }
        betas = b
        var acc = 1.0
        alphasCumprod = b.map { acc *= (1 - $0); return acc }
        sigmaGrid = nil
    }

    /// The schedule of a grid of noise levels (see `SigmaGrid`): abar_k = 1 / (1 + sigma_k^2),
    /// betas 1 - abar_k / abar_{k-1} (for information; they are not used to sample). The config
    /// records T = N and the prediction type (`beta_schedule` "sigma_grid").
    public init(sigmaGrid grid: SigmaGrid, prediction: PredictionType = .epsilon) {
        var c = SchedulerConfig(numTrainTimesteps: grid.count, predictionType: prediction.rawValue)
        c.betaSchedule = "sigma_grid"
        config = c
        let abar: [Double] = grid.levels.map { (s: Double) -> Double in 1 / (1 + s * s) }
        alphasCumprod = abar
        var b: [Double] = []
        var previous = 1.0
        for a in abar {
            b.append(1 - a / previous)
            previous = a
        }
        betas = b
        sigmaGrid = grid
    }

    /// sigma_t = sqrt((1 - abar_t) / abar_t): the grid's level for a grid schedule, else the
    /// variance-exploding noise level of timestep t.
    public func sigma(_ t: Int) -> Double {
        if let g = sigmaGrid { return g.lower + Double(t) * g.spacing }
        let a = alphasCumprod[t]
        return ((1 - a) / a).squareRoot()
    }

    /// sqrt(abar_t) and sqrt(1 - abar_t).
    public func coefficients(_ t: Int) -> (signal: Float, noise: Float) {
        precondition(t >= 0 && t < numTrainTimesteps, "NoiseSchedule: timestep \(t) outside 0..<\(numTrainTimesteps)")
        let a = alphasCumprod[t]
        return (Float(a.squareRoot()), Float((1 - a).squareRoot()))
    }

    /// Per-sample coefficients shaped [N, 1, 1, 1] for broadcasting over NCHW.
    func coefficientTensors(_ t: [Int]) -> (Tensor, Tensor) {
        let c = t.map(coefficients)
        return (Tensor(shape: [t.count, 1, 1, 1], c.map(\.signal)), Tensor(shape: [t.count, 1, 1, 1], c.map(\.noise)))
    }

    /// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, one t per batch item.
    public func addNoise(_ x0: Tensor, noise: Tensor, timesteps t: [Int]) -> Tensor {
        precondition(x0.shape == noise.shape && x0.shape[0] == t.count,
                     "addNoise: x0 \(x0.shape), noise \(noise.shape), \(t.count) timesteps")
        let (a, s) = coefficientTensors(t)
        return x0 * a + noise * s
    }

    /// v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (diffusers' `get_velocity`).
    public func velocity(_ x0: Tensor, noise: Tensor, timesteps t: [Int]) -> Tensor {
        let (a, s) = coefficientTensors(t)
        return noise * a - x0 * s
    }

    /// The training target for this schedule's prediction type.
    public func target(x0: Tensor, noise: Tensor, timesteps t: [Int]) -> Tensor {
        switch prediction {
        case .epsilon: return noise
        case .vPrediction: return velocity(x0, noise: noise, timesteps: t)
        case .sample: return x0
        }
    }

    /// Converts a network output at x_t into the predicted noise, whatever the prediction type
    /// (errors are measured in eps-space): v -> sqrt(abar) v + sqrt(1-abar) x_t;
    /// x0 -> (x_t - sqrt(abar) x0) / sqrt(1-abar).
    public func epsilon(fromOutput output: Tensor, sample xt: Tensor, timesteps t: [Int]) -> Tensor {
        switch prediction {
        case .epsilon: return output
        case .vPrediction:
            let (a, s) = coefficientTensors(t)
            return output * a + xt * s
        case .sample:
            let (a, s) = coefficientTensors(t)
            return (xt - output * a) / s
        }
    }

    /// Converts a network output at x_t into the predicted clean sample x0.
    public func sample(fromOutput output: Tensor, sample xt: Tensor, timesteps t: [Int]) -> Tensor {
        let (a, s) = coefficientTensors(t)
        switch prediction {
        case .epsilon: return (xt - output * s) / a
        case .vPrediction: return xt * a - output * s
        case .sample: return output
        }
    }
}
