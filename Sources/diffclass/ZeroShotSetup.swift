import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// The flags `zeroshot`, and `eval` and `robust` on a Stable Diffusion pipeline folder, share:
/// the labels (`--labels`, `--labels-file`), `--template`, `--image-size`, `--weights-dtype`;
/// the model itself is the library's `ZeroShotModel`.
enum ZeroShotSetup {
    static let valuedFlags: Set<String> = ["labels", "labels-file", "template", "image-size", "weights-dtype"]
    static let usage = """
    zero-shot options (a Stable Diffusion pipeline folder):
      --labels a,b,c | --labels-file FILE (one per line; default for an image folder: its class folders)
      [--template "a photo of a {}."] [--image-size 512]
      [--weights-dtype fp32|fp16|bf16] (16-bit storage of Linear/Conv2d/Embedding weights: half the memory,
        computed in Float32; F16 checkpoints give the same results as fp32)
    """

    static func isPipelineFolder(_ path: String) -> Bool { ZeroShotModel.isPipelineFolder(URL(fileURLWithPath: path)) }

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

    /// `--template` (default the public code's) and `--image-size` (default 512).
    static func readTemplateAndSize(_ args: inout Arguments) throws -> (template: String, imageSize: Int) {
        (args.string("template") ?? ZeroShotModel.defaultTemplate,
         try args.int("image-size", range: 8...4096) ?? ZeroShotModel.defaultImageSize)
    }

    /// The image folder a pipeline run reads (`--data`; `--dataset` is refused) and its labels
    /// (`--labels`/`--labels-file`, by default the class folders' names, one per folder).
    static func readImageFolder(_ args: inout Arguments, command: String) throws
        -> (folder: URL, listing: (files: [URL], labels: [Int], classNames: [String]), labels: [String]) {
        guard let data = args.string("data") else { throw UsageError("\(command) with a Stable Diffusion pipeline needs --data IMAGE_FOLDER") }
        if args.string("dataset") != nil { throw UsageError("--dataset: \(command) with a Stable Diffusion pipeline reads --data IMAGE_FOLDER") }
        let folder = URL(fileURLWithPath: data)
        let listing = try ImageFolder.files(folder)
        let labels = try readLabels(&args, fallback: listing.classNames)
        guard labels.count == listing.classNames.count else {
            throw UsageError("--labels: \(labels.count) labels for the \(listing.classNames.count) class folders of \(data) (\(listing.classNames.joined(separator: ", ")))")
        }
        return (folder, listing, labels)
    }

    /// Warns on stderr about prompts the text encoder cuts at 77 tokens (diffusers cuts them too,
    /// with a warning): their ends change nothing, so two long prompts may be the same class.
    static func warnAboutTruncatedPrompts(_ model: ZeroShotModel) {
        for (prompt, tokens) in model.truncatedPrompts {
            FileHandle.standardError.write(Data("diffclass: warning: the prompt '\(prompt)' is \(tokens) tokens; the text encoder reads the first \(model.pipeline.tokenizer.modelMaxLength) (start and end tokens included), the rest is ignored\n".utf8))
        }
    }

    /// The settings of a run, with the prompts, image size and weight storage recorded.
    static func settings(_ flags: MethodFlags, model: ZeroShotModel, modelPath: String, dataset: String,
                         split: String) throws -> EvaluationSettings {
        var s = try flags.settings(model: URL(fileURLWithPath: modelPath).standardizedFileURL.path, dataset: dataset, split: split,
                                   classes: model.labels.count, schedule: model.pipeline.schedule)
        s.prompts = model.prompts
        s.imageSize = model.imageSize
        s.weightStorage = model.weightStorage
        return s
    }
}
