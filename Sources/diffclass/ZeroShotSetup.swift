import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// What `zeroshot` and `eval` on a Stable Diffusion pipeline folder share: the pipeline, the class
/// labels and prompts, and the image size (the public code's 512 by default).
struct ZeroShotSetup {
    static let defaultTemplate = "a photo of a {}."
    /// Pairs per U-Net call without `--batch-size` (a 512x512 SD U-Net batch of 8 needs a few GB).
    static let defaultBatchSize = 8

    let pipeline: StableDiffusionPipeline
    let labels: [String]
    let prompts: [String]
    let imageSize: Int
    let weightStorage: WeightStorage
    let model: PromptConditionedUNet

    /// True when `path` looks like a diffusers pipeline folder (has `text_encoder/` and `unet/`).
    static func isPipelineFolder(_ path: String) -> Bool {
        let fm = FileManager.default, url = URL(fileURLWithPath: path)
        return fm.fileExists(atPath: url.appendingPathComponent("text_encoder").path) && fm.fileExists(atPath: url.appendingPathComponent("unet").path)
    }

    /// Labels from `--labels a,b,c` or `--labels-file F` (one per line, blank lines skipped), or
    /// `fallback` (e.g. an image folder's class names) when neither is given.
    static func readLabels(_ args: inout Arguments, fallback: [String]? = nil) throws -> [String] {
        let text = args.string("labels"), file = args.string("labels-file")
        let labels: [String]
        switch (text, file) {
        case let (t?, nil):
            labels = t.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard !labels.contains("") else { throw UsageError("--labels: '\(t)' has an empty label") }
        case let (nil, f?):
            let content: String
            do { content = try String(contentsOfFile: f, encoding: .utf8) } catch {
                throw UsageError("--labels-file: cannot read \(f): \(error.localizedDescription)")
            }
            labels = content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !labels.isEmpty else { throw UsageError("--labels-file: \(f) has no labels") }
        case (nil, nil):
            guard let fallback else { throw UsageError("give the classes with --labels a,b,c or --labels-file FILE") }
            labels = fallback
        default:
            throw UsageError("give --labels or --labels-file, not both")
        }
        guard Set(labels).count == labels.count else { throw UsageError("--labels: a label is given twice") }
        return labels
    }

    /// `--weights-dtype fp32|fp16|bf16` (default fp32): how the pipeline keeps its large weights.
    static func readWeightStorage(_ args: inout Arguments) throws -> WeightStorage {
        guard let s = args.string("weights-dtype") else { return .float32 }
        guard let storage = WeightStorage(rawValue: s) else {
            throw UsageError("--weights-dtype expects fp32, fp16 or bf16, got '\(s)'")
        }
        return storage
    }

    /// Loads the pipeline (weights kept as `weightStorage`) and encodes one prompt per label.
    init(modelPath: String, labels: [String], template: String, imageSize: Int, weightStorage: WeightStorage) throws {
        pipeline = try StableDiffusionPipeline.load(from: URL(fileURLWithPath: modelPath), weightStorage: weightStorage)
        self.weightStorage = weightStorage
        self.labels = labels
        do { prompts = try StableDiffusionPipeline.prompts(labels: labels, template: template) } catch {
            throw UsageError("--template: '\(template)' must contain exactly one {}")
        }
        let factor = 1 << (pipeline.vae.config.blockOutChannels.count - 1)
        let unetFactor = 1 << (pipeline.unet.config.blockOutChannels.count - 1)
        guard imageSize % (factor * unetFactor) == 0 else {
            throw UsageError("--image-size: \(imageSize) must be a multiple of \(factor * unetFactor) for this pipeline")
        }
        self.imageSize = imageSize
        model = pipeline.conditionedModel(embeddings: pipeline.promptEmbeddings(prompts: prompts))
    }

    /// The settings of a run, with the prompts and image size recorded.
    func settings(_ flags: MethodFlags, modelPath: String, dataset: String, split: String) throws -> EvaluationSettings {
        var s = try flags.settings(model: URL(fileURLWithPath: modelPath).standardizedFileURL.path, dataset: dataset, split: split,
                                   classes: labels.count, schedule: pipeline.schedule)
        s.prompts = prompts
        s.imageSize = imageSize
        s.weightStorage = weightStorage
        return s
    }

    /// An image file's VAE latents [1, 4, size/8, size/8] (public-code preprocessing).
    func latents(_ url: URL) throws -> Tensor {
        pipeline.latents(try StableDiffusionImageInput.load(url, size: imageSize))
    }
}
