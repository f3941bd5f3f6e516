import DiT
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// The parts of a diffusers `DiTPipeline` folder that classification uses: `model_index.json`
/// (its `id2label`: the class names), `transformer/` (a `DiTTransformer2DModel`, or the
/// `Transformer2DModel` config the published DiT folders carry), `vae/` (an `AutoencoderKL`) and
/// `scheduler/scheduler_config.json` (the training betas; DiT folders ship a DDIMScheduler and
/// users swap in DPMSolver-style ones, which share the same beta fields).
///
/// The classifier sees the transformer as a class-conditional noise predictor on VAE latents:
/// x0 = posterior mean x scaling_factor (`latents`), the schedule's alphas_cumprod, class k = label
/// id k, and the noise half of the learned-sigma output (what the public Diffusion Classifier code
/// and `DiTPipeline` use). The scheduler's sampling settings (timestep spacing, solver order, ...)
/// do not matter to classification and are not read.
public final class DiTPipeline {
    public let transformer: DiTTransformer2DModel
    public let vae: AutoencoderKL
    public let schedule: NoiseSchedule
    /// Name of class id k, for k = 0..<num_embeds_ada_norm (the id2label value, e.g.
    /// "tench, Tinca tinca"; comma-separated synonyms as ImageNet's).
    public let classNames: [String]
    public let folder: URL

    public static let modelIndexName = "model_index.json"
    public static let className = "DiTPipeline"
    /// The subfolders and files a pipeline folder must have (weights are checked by each loader).
    public static let requiredParts = [modelIndexName, "transformer/config.json", "vae/config.json", DiffusersFolder.schedulerPath]
    /// Schedulers whose config gives the training betas through `num_train_timesteps`,
    /// `beta_start`, `beta_end` and `beta_schedule`, as DDPM's.
    public static let schedulerClasses = [
        "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
        "DEISMultistepScheduler", "UniPCMultistepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
        "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "LMSDiscreteScheduler",
    ]

    /// Checks that the parts fit together (errors name the config file and field).
    public init(transformer: DiTTransformer2DModel, vae: AutoencoderKL, schedule: NoiseSchedule, classNames: [String], folder: URL) throws {
        let transformerConfig = folder.appendingPathComponent("transformer/config.json").path
        let c = transformer.config
        guard c.inChannels == vae.config.latentChannels else {
            throw ConfigError(file: transformerConfig, "in_channels \(c.inChannels) does not match vae latent_channels \(vae.config.latentChannels)")
        }
        guard c.outputChannels == c.inChannels || c.learnsSigma else {
            throw ConfigError(file: transformerConfig,
                              "out_channels \(c.outputChannels) must be in_channels \(c.inChannels) or, with learned sigma, \(2 * c.inChannels)")
        }
        guard classNames.count == c.classCount else {
            throw ConfigError(file: folder.appendingPathComponent(Self.modelIndexName).path,
                              "\(classNames.count) class names for num_embeds_ada_norm \(c.classCount) classes")
        }
        self.transformer = transformer
        self.vae = vae
        self.schedule = schedule
        self.classNames = classNames
        self.folder = folder
    }

    /// Whether `folder` looks like a DiT pipeline folder (its model_index.json names DiTPipeline).
    public static func isPipelineFolder(_ folder: URL) -> Bool {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent(modelIndexName)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["_class_name"] as? String == className
    }

    /// Loads every part strictly; a missing part or file is named (`ConfigError`). `classNames`
    /// (one per class id, e.g. from a labels file) replaces model_index.json's `id2label`, which
    /// is then not required. `weightStorage` keeps the transformer's and VAE's Linear, Conv2d and
    /// Embedding weights as 16-bit (`WeightStorage`; computation stays Float32).
    public static func load(from folder: URL, classNames: [String]? = nil, weightStorage: WeightStorage = .float32) throws -> DiTPipeline {
        let fm = FileManager.default
        for part in requiredParts where !fm.fileExists(atPath: folder.appendingPathComponent(part).path) {
            throw ConfigError(file: folder.appendingPathComponent(part).path,
                              "missing: not a diffusers DiT pipeline folder (needs model_index.json, transformer/, vae/, scheduler/)")
        }
        let indexURL = folder.appendingPathComponent(modelIndexName)
        let index = try readJSONObject(indexURL)
        if let name = index["_class_name"], name as? String != className {
            throw ConfigError(file: indexURL.path, "_class_name is \(name), expected '\(className)'")
        }
        let schedule = try loadSchedule(folder.appendingPathComponent(DiffusersFolder.schedulerPath))
        // The configs first (cheap), so a bad id2label is reported before weights are read.
        let transformerConfig = try DiTTransformer2DConfig.load(folder.appendingPathComponent("transformer/config.json"))
        let names: [String]
        if let classNames {
            guard classNames.count == transformerConfig.classCount else {
                throw ConfigError(file: folder.appendingPathComponent("transformer/config.json").path,
                                  "num_embeds_ada_norm is \(transformerConfig.classCount), but \(classNames.count) class names were given")
            }
            names = classNames
        } else {
            names = try Self.classNames(id2label: index["id2label"], classCount: transformerConfig.classCount, file: indexURL.path)
        }
        return try DiTPipeline(
            transformer: try DiTTransformer2DModel.load(from: folder.appendingPathComponent("transformer"), weightStorage: weightStorage),
            vae: try AutoencoderKL.load(from: folder.appendingPathComponent("vae"), weightStorage: weightStorage),
            schedule: schedule, classNames: names, folder: folder)
    }

    /// The class names from an `id2label` value (`{"0": "tench, Tinca tinca", ...}`: keys are the
    /// decimal class ids, values the names), which must name every id 0..<classCount and no other;
    /// errors name `file` and the missing, extra or malformed entries.
    public static func classNames(id2label: Any?, classCount: Int, file: String) throws -> [String] {
        try ModelClassNames.names(id2label: id2label, classCount: classCount, file: file)
    }

    /// The class id whose name is `name`, or which has `name` among its comma-separated synonyms
    /// (diffusers' `DiTPipeline.get_label_ids`: "white shark" -> 2); nil if none.
    public func classID(named name: String) -> Int? {
        let wanted = name.trimmingCharacters(in: .whitespaces)
        if let exact = classNames.firstIndex(of: name) { return exact }
        return classNames.firstIndex { full in
            full.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == wanted }
        }
    }

    /// Class ids 0..<K, the classifier's conditions for every class.
    public var classIDs: [Int] { Array(classNames.indices) }

    /// The VAE's downscaling factor (2^(blocks - 1)).
    public var latentScale: Int { 1 << (vae.config.blockOutChannels.count - 1) }

    /// The image side the transformer was trained on: sample_size x the VAE's factor (256 for DiT-XL/2-256).
    public var imageSize: Int { transformer.config.sampleSize * latentScale }

    /// VAE latents (posterior mean x scaling_factor) of images in [-1, 1], [N, 3, S, S] ->
    /// [N, latent, S/f, S/f]; S/f must be a multiple of the patch size (`imageSize` is).
    public func latents(_ images: Tensor) -> Tensor {
        let f = latentScale * transformer.config.patchSize
        precondition(images.rank == 4 && images.shape[2] == images.shape[3] && images.shape[2] % f == 0,
                     "DiTPipeline: images \(images.shape), expected [N, 3, S, S] with S a multiple of \(f)")
        return Autograd.noGrad { vae.encode(images) }
    }

    /// The scheduler config as a noise schedule, refusing what would change the betas without
    /// showing in the DDPM fields (`trained_betas`, `rescale_betas_zero_snr`) or a scheduler
    /// whose betas are not DDPM's.
    static func loadSchedule(_ url: URL) throws -> NoiseSchedule {
        let raw = try readJSONObject(url)
        if let name = raw["_class_name"] as? String, !schedulerClasses.contains(name) {
            throw ConfigError(file: url.path, "_class_name '\(name)' is not supported (\(schedulerClasses.joined(separator: ", ")))")
        }
        return NoiseSchedule(try SchedulerConfig.load(url))  // refuses trained_betas and rescale_betas_zero_snr
    }

    static func readJSONObject(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ConfigError(file: url.path, "not a JSON object")
        }
        return object
    }

    static func listed(_ items: [String]) -> String { ModelClassNames.listed(items) }
}

extension DiTPipeline {
    /// The pipeline for the classifiers (`ClassifierModel`): class k is label id k (all of
    /// `classIDs` by default), the unconditional model the transformer's null class, and the
    /// VAE the encoder, so evaluation, the differentiable classifier, RDC and robustness runs
    /// take a DiT as they take a pixel-space U-Net.
    public func classifierModel(classes: [Int]? = nil) -> ClassifierModel {
        ClassifierModel(predictor: transformer, schedule: schedule, conditions: classes ?? classIDs, unconditional: transformer.nullClass,
                        encoder: LatentSpace(vae: vae), summary: "a DiT pipeline with \(classNames.count) classes")
    }
}
