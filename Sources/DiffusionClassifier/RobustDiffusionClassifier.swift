import Diffusion
import TensorEngine

/// The Robust Diffusion Classifier (Chen et al., ICML 2024): likelihood maximization on the
/// unconditional model, then the diffusion classifier's logits -L(x', y) on the result:
///
///     logits(x) = DiffusionLogits(LM(x))
///
/// Both stages use the same class-conditional model: LM conditions on `unconditional` (for
/// diffusers' class-conditional U-Nets, the last class embedding, num_class_embeds - 1).
/// Differences from the paper: a DDPM timestep grid and `TimestepWeighting` instead of EDM's
/// noise-level grid and log-normal weights (see `DiffusionLogits`), and our LM options (see
/// `LikelihoodMaximization`).
///
/// Randomness: the classifier's eps come from `randomness` itself; LM's draws from the seed
/// `RandomGenerator(seed: randomness).derived(0x4C4D).nextUInt64()` (an independent stream), so one
/// value of `randomness` fixes the whole function. Gradients are exact through the classifier and,
/// per `lm.gradient`, through LM (see there for what "exact" covers).
public final class RobustDiffusionClassifier: DifferentiableClassifier {
    public let head: DiffusionLogits
    public let lm: LikelihoodMaximization
    public let unconditional: Int
    /// The head's network at any noise level (an EDM denoiser): LM then runs in sigma-space.
    public let denoiser: NoiseLevelDenoiser?

    public init(head: DiffusionLogits, lm: LikelihoodMaximization, unconditional: Int, denoiser: NoiseLevelDenoiser? = nil) {
        self.head = head
        self.lm = lm
        self.unconditional = unconditional
        self.denoiser = denoiser
    }

    /// RDC over a class-conditional `UNet2DModel` (null class = its last class embedding).
    public convenience init(model: UNet2DModel, schedule: NoiseSchedule, timestepCount: Int, lm: LikelihoodMaximization,
                            weighting: TimestepWeighting = .uniform, temperature: Double = 1, batchSize: Int = 64) {
        let head = DiffusionLogits(model: model, schedule: schedule, timestepCount: timestepCount, weighting: weighting,
                                   temperature: temperature, batchSize: batchSize)
        self.init(head: head, lm: lm, unconditional: model.config.numClassEmbeds! - 1)
    }

    public var classCount: Int { head.classCount }
    public var isRandomized: Bool { head.isRandomized || lm.steps > 0 }

    /// The seed of LM's draws for a given `randomness`.
    public static func lmSeed(_ randomness: UInt64) -> UInt64 {
        var g = RandomGenerator(seed: randomness).derived(0x4C4D)
        return g.nextUInt64()
    }

    /// LM(x) as `logits` computes it.
    public func purify(_ x: Tensor, randomness: UInt64) -> Tensor {
        lm.run(x, model: head.model, schedule: head.schedule, unconditional: unconditional, randomness: Self.lmSeed(randomness),
               encoder: head.encoder, denoiser: denoiser)
    }

    public func logits(_ x: Tensor, randomness: UInt64) -> Tensor {
        head.logits(purify(x, randomness: randomness), randomness: randomness)
    }
}
