import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// A diffusion model as the classifiers see it, whatever its family: the noise predictor, its
/// schedule, the condition of each class, the condition of the unconditional model (RDC's
/// likelihood maximization), and how images become its clean samples.
///
/// A model family plugs in by providing one: a class-conditional `UNet2DModel` (classes are
/// class ids, the null class its last embedding, pixel space), a Stable Diffusion pipeline (one
/// prompt per class, the empty prompt as the null condition, its VAE as the encoder), and so on
/// for a new family. Evaluation (`EvaluationSettings.makeClassifier`), the differentiable
/// classifier and RDC (`DiffusionLogits`, `RobustDiffusionClassifier`) and robustness runs take
/// it unchanged. A family whose network is not a DDPM eps/v/x0 predictor over discrete
/// timesteps wraps it as a `ConditionalNoisePredictor` over a `NoiseSchedule` that describes it
/// (for a continuous noise-level network: the schedule of its discretised noise levels).
public struct ClassifierModel {
    public var predictor: ConditionalNoisePredictor
    public var schedule: NoiseSchedule
    /// The model's condition for each class 0..<K.
    public var conditions: [Int]
    /// The condition of the unconditional model, nil when the model has none.
    public var unconditional: Int?
    public var encoder: SampleEncoder
    /// What the model is, for messages ("a UNet2DModel with 5 class embeddings").
    public var summary: String
    /// The predictor's network at any noise level, for a continuous-noise-level model (EDM):
    /// RDC's likelihood maximization then draws sigma continuously. nil for DDPM models.
    public var denoiser: NoiseLevelDenoiser?

    public init(predictor: ConditionalNoisePredictor, schedule: NoiseSchedule, conditions: [Int], unconditional: Int?,
                encoder: SampleEncoder = PixelSpace(), summary: String, denoiser: NoiseLevelDenoiser? = nil) {
        self.denoiser = denoiser
        self.predictor = predictor
        self.schedule = schedule
        self.conditions = conditions
        self.unconditional = unconditional
        self.encoder = encoder
        self.summary = summary
    }

    public var classCount: Int { conditions.count }

    /// A class-conditional `UNet2DModel` over its first `classes` class ids; the unconditional
    /// model is its last class embedding (diffusers' and this package's convention: classes
    /// 0..<num_class_embeds - 1, then the null class). Refuses more classes than that, so the null
    /// class is never a candidate (a model with one embedding is taken as one class, no null class).
    public init(unet: UNet2DModel, schedule: NoiseSchedule, classes: Int) throws {
        let embeds = unet.config.numClassEmbeds ?? 0
        if embeds >= 2, classes >= embeds {
            throw ClassifierError("\(Setting.model): \(classes) classes asked for, the model has \(embeds - 1) (class embedding \(embeds - 1) is the null class, not a class)")
        }
        guard embeds >= classes else {
            throw ClassifierError("\(Setting.model): the model has \(unet.config.numClassEmbeds.map(String.init) ?? "no") class embeddings for \(classes) classes")
        }
        self.init(predictor: unet, schedule: schedule, conditions: Array(0..<classes), unconditional: embeds > classes ? embeds - 1 : nil,
                  encoder: PixelSpace(), summary: "a UNet2DModel with \(embeds) class embeddings")
    }
}
