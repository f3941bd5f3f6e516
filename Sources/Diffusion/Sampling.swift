import Foundation
import NeuralNetworks
import TensorEngine

/// Ancestral DDPM and deterministic DDIM sampling for class-conditional models, with
/// classifier-free guidance against the null class.
///
/// Matches diffusers' DDPMScheduler.step (variance_type "fixed_small", the scheduler config's
/// clip_sample and clip_sample_range) and DDIMScheduler.step (eta 0, set_alpha_to_one, the same
/// clipping) with "leading" timestep spacing: t_i = i * (T / steps), visited from the largest. Noise comes from our
/// Philox generator, so samples do not equal diffusers' for the same seed number (from the same
/// initial noise, `sample(initialNoise:...)`, they do: tested against diffusers).
///
/// DDIM and clipping: diffusers' default (`use_clipped_model_output=False`) clips the predicted
/// x0 but keeps the network's eps for the direction term, so the two no longer describe the same
/// x_t. Early, strongly guided steps predict x0 far outside [-1, 1]; each step then adds the
/// mismatch, and more steps add more of it: with the shipped model and guidance 2, 50 and 100
/// steps gave visibly worse samples than 25 (blobs), in diffusers as here. Recomputing eps from
/// the clipped x0 (`use_clipped_model_output=True`) keeps every step consistent, and samples then
/// agree across 25, 50 and 100 steps. That is our default (`clippedModelOutput`); set it false
/// for diffusers' default.
public struct Sampler {
    public enum Method: String { case ddpm, ddim }

    public let model: ConditionalNoisePredictor
    public let schedule: NoiseSchedule
    public var method: Method = .ddim
    public var steps = 50
    /// Guidance weight w: eps = eps_null + w (eps_cond - eps_null); 1 = no guidance.
    public var guidance: Float = 1
    /// The null (unconditional) class id, needed when guidance != 1.
    public var nullClass: Int?
    /// DDIM: eps recomputed from the clipped x0, as diffusers' `use_clipped_model_output=True`
    /// (see above); false: the network's eps, diffusers' default. DDPM does not use eps after x0.
    public var clippedModelOutput = true

    public init(model: ConditionalNoisePredictor, schedule: NoiseSchedule) {
        self.model = model
        self.schedule = schedule
    }

    /// The visited timesteps, largest first.
    public var timesteps: [Int] {
        let ratio = schedule.numTrainTimesteps / steps
        return (0..<steps).map { $0 * ratio + schedule.config.stepsOffset }.reversed()
    }

    /// Predicted noise for a batch at timestep t, guided when asked.
    func epsilon(_ x: Tensor, t: Int, classes: [Int]) -> Tensor {
        let n = x.shape[0]
        let ts = [Float](repeating: Float(t), count: n)
        if guidance == 1 {
            let out = model.predict(x, timesteps: ts, conditions: Tensor(shape: [n], classes.map(Float.init)))
            return schedule.epsilon(fromOutput: out, sample: x, timesteps: Array(repeating: t, count: n))
        }
        guard let nullClass else { preconditionFailure("Sampler: guidance needs the null class id") }
        let both = Tensor.concat([x, x], axis: 0)
        let labels = Tensor(shape: [2 * n], classes.map(Float.init) + Array(repeating: Float(nullClass), count: n))
        let out = model.predict(both, timesteps: ts + ts, conditions: labels)
        let eps = schedule.epsilon(fromOutput: out, sample: both, timesteps: Array(repeating: t, count: 2 * n))
        let parts = eps.split(sizes: [n, n], axis: 0)
        return parts[1] + (parts[0] - parts[1]) * guidance
    }

    /// Draws `classes.count` samples [n, C, H, W] in [-1, 1], starting from standard normal noise
    /// drawn from `seed`.
    public func sample(classes: [Int], channels: Int, height: Int, width: Int, seed: UInt64,
                       progress: ((Int) -> Void)? = nil) -> Tensor {
        var g = RandomGenerator(seed: seed, stream: 0x53414D50)
        let x = Tensor.randn([classes.count, channels, height, width], generator: &g)
        return sample(classes: classes, initialNoise: x, generator: &g, progress: progress)
    }

    /// Draws one sample per class from `initialNoise` [n, C, H, W] (x_T); DDPM's per-step noise
    /// comes from `generator`.
    public func sample(classes: [Int], initialNoise: Tensor, generator g: inout RandomGenerator,
                       progress: ((Int) -> Void)? = nil) -> Tensor {
        precondition(initialNoise.rank == 4 && initialNoise.shape[0] == classes.count,
                     "Sampler: initial noise \(initialNoise.shape) for \(classes.count) classes")
        return Autograd.noGrad {
            var x = initialNoise
            let clip = schedule.config.clipSample, clipRange = Float(schedule.config.clipSampleRange)
            let ratio = schedule.numTrainTimesteps / steps
            for (i, t) in timesteps.enumerated() {
                var eps = epsilon(x, t: t, classes: classes)
                let prev = t - ratio
                let abar = schedule.alphasCumprod[t]
                let abarPrev = prev >= 0 ? schedule.alphasCumprod[prev] : 1
                var x0 = (x - eps * Float((1 - abar).squareRoot())) * Float(1 / abar.squareRoot())
                if clip { x0 = x0.clamp(min: -clipRange, max: clipRange) }
                switch method {
                case .ddim:
                    if clip && clippedModelOutput {
                        eps = (x - x0 * Float(abar.squareRoot())) * Float(1 / (1 - abar).squareRoot())
                    }
                    x = x0 * Float(abarPrev.squareRoot()) + eps * Float((1 - abarPrev).squareRoot())
                case .ddpm:
                    let alphaT = abar / abarPrev, betaT = 1 - alphaT
                    let c0 = abarPrev.squareRoot() * betaT / (1 - abar)
                    let ct = alphaT.squareRoot() * (1 - abarPrev) / (1 - abar)
                    x = x0 * Float(c0) + x * Float(ct)
                    if t > 0 {
                        let variance = Swift.max((1 - abarPrev) / (1 - abar) * betaT, 1e-20)
                        x = x + Tensor.randn(x.shape, generator: &g) * Float(variance.squareRoot())
                    }
                }
                progress?(i + 1)
            }
            return x.clamp(min: -1, max: 1)
        }
    }
}
