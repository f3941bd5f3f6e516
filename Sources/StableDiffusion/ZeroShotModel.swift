import Diffusion
import DiffusionClassifier
import Foundation
import Images
import NeuralNetworks
import TensorEngine

/// A latent diffusion model's image encoder: x0 = `vae.encode(2x - 1)` (posterior mean times
/// the scaling factor), recorded, so attacks differentiate through the VAE.
public struct LatentSpace: SampleEncoder {
    public let vae: AutoencoderKL
    public init(vae: AutoencoderKL) { self.vae = vae }
    public func encode(pixels x: Tensor) -> Tensor { vae.encode(x * 2 - 1) }
    public func sampleShape(pixels: [Int]) -> [Int] {
        let f = 1 << (vae.config.blockOutChannels.count - 1)
        return [pixels[0], vae.config.latentChannels, pixels[2] / f, pixels[3] / f]
    }
}

/// Zero-shot classification with a Stable Diffusion pipeline, as the Diffusion Classifier's
/// public code sets it up: class k is conditioned on the text encoder's embedding of the template
/// filled with label k (no classifier-free guidance), images are encoded to VAE latents at
/// `imageSize`. `classifierModel` hands it to evaluation, the differentiable classifier and RDC
/// (whose unconditional model is the empty prompt).
public final class ZeroShotModel {
    public static let defaultTemplate = "a photo of a {}."
    /// The public code's image size.
    public static let defaultImageSize = 512
    /// Pairs per U-Net call (a 512x512 SD U-Net batch of 8 needs a few GB).
    public static let defaultBatchSize = 8

    public let pipeline: StableDiffusionPipeline
    public let labels: [String]
    public let prompts: [String]
    public let imageSize: Int
    public let weightStorage: WeightStorage
    /// The U-Net conditioned on one prompt per label.
    public let model: PromptConditionedUNet

    /// True when `folder` looks like a diffusers pipeline folder (has `text_encoder/` and `unet/`).
    public static func isPipelineFolder(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent("text_encoder").path)
            && fm.fileExists(atPath: folder.appendingPathComponent("unet").path)
    }

    /// Encodes one prompt per label. Errors name `Setting.template` (not exactly one `{}`) and
    /// `Setting.imageSize` (not a multiple of the VAE's and U-Net's downsampling).
    public init(pipeline: StableDiffusionPipeline, labels: [String], template: String = defaultTemplate,
                imageSize: Int = defaultImageSize, weightStorage: WeightStorage = .float32) throws {
        self.pipeline = pipeline
        self.weightStorage = weightStorage
        self.labels = labels
        prompts = try StableDiffusionPipeline.prompts(labels: labels, template: template)
        let factor = 1 << (pipeline.vae.config.blockOutChannels.count - 1)
        let unetFactor = 1 << (pipeline.unet.config.blockOutChannels.count - 1)
        guard imageSize % (factor * unetFactor) == 0 else {
            throw SettingError(.imageSize, "\(imageSize) must be a multiple of \(factor * unetFactor) for this pipeline")
        }
        self.imageSize = imageSize
        model = pipeline.conditionedModel(embeddings: pipeline.promptEmbeddings(prompts: prompts))
    }

    /// Loads the pipeline folder (weights kept as `weightStorage`), then as `init(pipeline:...)`.
    public convenience init(folder: URL, labels: [String], template: String = defaultTemplate, imageSize: Int = defaultImageSize,
                            weightStorage: WeightStorage = .float32) throws {
        try self.init(pipeline: try StableDiffusionPipeline.load(from: folder, weightStorage: weightStorage), labels: labels,
                      template: template, imageSize: imageSize, weightStorage: weightStorage)
    }

    /// The prompts longer than the text encoder reads (start and end tokens included) and their
    /// token counts: CLIP sees only the first `modelMaxLength` tokens (77), as in diffusers, so
    /// the end of such a prompt changes nothing. Callers warn about them.
    public var truncatedPrompts: [(prompt: String, tokens: Int)] {
        let limit = pipeline.tokenizer.modelMaxLength
        return prompts.compactMap { p in
            let n = pipeline.tokenizer.encode(p).count
            return n > limit ? (p, n) : nil
        }
    }

    /// VAE latents [N, 4, size/8, size/8] of images [N, 3, size, size] in [-1, 1].
    public func latents(_ images: Tensor) -> Tensor { pipeline.latents(images) }

    /// An image file as the public code prepares it ([1, 3, size, size] in [-1, 1]:
    /// `StableDiffusionImageInput`). Errors name the file.
    public func image(_ url: URL) throws -> Tensor { try StableDiffusionImageInput.load(url, size: imageSize) }

    /// An image file's VAE latents [1, 4, size/8, size/8].
    public func latents(_ url: URL) throws -> Tensor { latents(try image(url)) }

    /// The model for the classifiers: class k conditioned on prompt k, the VAE as the encoder;
    /// with `unconditional`, also the empty prompt as the unconditional model (condition K,
    /// encoded on its own so the classes' embeddings are unchanged).
    public func classifierModel(unconditional: Bool = false) -> ClassifierModel {
        let K = labels.count
        var predictor = model
        if unconditional {
            let empty = pipeline.promptEmbeddings(prompts: [""])
            predictor = pipeline.conditionedModel(embeddings: Tensor.concat([model.embeddings, empty], axis: 0))
        }
        return ClassifierModel(predictor: predictor, schedule: pipeline.schedule, conditions: Array(0..<K),
                               unconditional: unconditional ? K : nil, encoder: LatentSpace(vae: pipeline.vae),
                               summary: "a Stable Diffusion pipeline with \(K) prompts")
    }
}
