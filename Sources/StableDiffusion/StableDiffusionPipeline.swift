import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// The settings of zero-shot classification named in errors (see `Setting`).
extension Setting {
    /// The prompt template, with one `{}` for the label.
    public static let template = Setting("template")
    /// The class labels the prompts are made of.
    public static let labels = Setting("labels")
    /// The image size before VAE encoding.
    public static let imageSize = Setting("image_size")
}

/// The parts of a diffusers Stable Diffusion pipeline folder (`StableDiffusionPipeline.save_pretrained`
/// layout) that zero-shot classification uses: `tokenizer/`, `text_encoder/`, `unet/`, `vae/` and
/// `scheduler/scheduler_config.json`. The safety checker and feature extractor are not read.
public final class StableDiffusionPipeline {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let schedule: NoiseSchedule
    public let folder: URL

    public init(tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel, vae: AutoencoderKL,
                schedule: NoiseSchedule, folder: URL) throws {
        let hidden = textEncoder.config.hiddenSize
        guard unet.config.crossAttentionDim.allSatisfy({ $0 == hidden }) else {
            throw ConfigError(file: folder.appendingPathComponent("unet/config.json").path,
                              "cross_attention_dim \(unet.config.crossAttentionDim) does not match text_encoder hidden_size \(hidden)")
        }
        guard unet.config.inChannels == vae.config.latentChannels else {
            throw ConfigError(file: folder.appendingPathComponent("unet/config.json").path,
                              "in_channels \(unet.config.inChannels) does not match vae latent_channels \(vae.config.latentChannels)")
        }
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.vae = vae
        self.schedule = schedule
        self.folder = folder
    }

    /// The subfolders and files a pipeline folder must have (weights are checked by each loader).
    public static let requiredParts = ["tokenizer/vocab.json", "tokenizer/merges.txt", "text_encoder/config.json",
                                       "unet/config.json", "vae/config.json", DiffusersFolder.schedulerPath]

    /// Loads every part strictly; a missing part or file is named (`ConfigError`).
    /// `weightStorage` keeps the text encoder's, U-Net's and VAE's Linear, Conv2d and Embedding
    /// weights as 16-bit (`WeightStorage`; computation stays Float32).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> StableDiffusionPipeline {
        let fm = FileManager.default
        for part in requiredParts where !fm.fileExists(atPath: folder.appendingPathComponent(part).path) {
            throw ConfigError(file: folder.appendingPathComponent(part).path,
                              "missing: not a diffusers Stable Diffusion pipeline folder (needs tokenizer/, text_encoder/, unet/, vae/, scheduler/)")
        }
        let schedulerConfig = try SchedulerConfig.load(folder.appendingPathComponent(DiffusersFolder.schedulerPath))
        return try StableDiffusionPipeline(
            tokenizer: try CLIPTokenizer.load(from: folder.appendingPathComponent("tokenizer")),
            textEncoder: try CLIPTextModel.load(from: folder.appendingPathComponent("text_encoder"), weightStorage: weightStorage),
            unet: try UNet2DConditionModel.load(from: folder.appendingPathComponent("unet"), weightStorage: weightStorage),
            vae: try AutoencoderKL.load(from: folder.appendingPathComponent("vae"), weightStorage: weightStorage),
            schedule: NoiseSchedule(schedulerConfig), folder: folder)
    }

    /// The prompt for each label: `template` with its `{}` replaced by the label (Python's
    /// `template.format(label)` for a template with one `{}`).
    public static func prompts(labels: [String], template: String) throws -> [String] {
        guard template.components(separatedBy: "{}").count == 2 else {
            throw SettingError(.template, "'\(template)' must contain exactly one {}")
        }
        return labels.map { template.replacingOccurrences(of: "{}", with: $0) }
    }

    /// The text encoder's last hidden state for each prompt, [K, 77, hidden]: ids padded to the
    /// tokenizer's max length (as the public code's `tokenizer(..., padding="max_length",
    /// truncation=True)`), no attention mask, computed in batches of `batch` prompts.
    public func promptEmbeddings(prompts: [String], batch: Int = 16) -> Tensor {
        precondition(!prompts.isEmpty)
        let rows = prompts.map { tokenizer.encodePadded($0) }
        var parts: [Tensor] = []
        var start = 0
        while start < rows.count {
            let end = Swift.min(start + batch, rows.count)
            parts.append(textEncoder.encode(Array(rows[start..<end])))
            start = end
        }
        return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
    }

    /// `promptEmbeddings` of `template` filled with each label (default "a photo of a {}.").
    public func promptEmbeddings(labels: [String], template: String = "a photo of a {}.") throws -> Tensor {
        promptEmbeddings(prompts: try StableDiffusionPipeline.prompts(labels: labels, template: template))
    }

    /// VAE latents (posterior mean * scaling_factor) of images in [-1, 1], [N, 3, H, W] -> [N, 4, H/8, W/8].
    public func latents(_ images: Tensor) -> Tensor {
        Autograd.noGrad { vae.encode(images) }
    }

    /// The U-Net conditioned on these prompt embeddings, as a classifier's model.
    public func conditionedModel(embeddings: Tensor) -> PromptConditionedUNet {
        PromptConditionedUNet(unet: unet, embeddings: embeddings)
    }
}
