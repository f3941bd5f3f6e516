import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// `diffclass zeroshot`: zero-shot labels for image files with a Stable Diffusion pipeline.
struct ZeroShotCommand: Command {
    let name = "zeroshot"
    let summary = "zero-shot classification with a Stable Diffusion pipeline folder (diffusers layout)"
    let usage = """
    usage: diffclass zeroshot --model SD_DIR (--labels a,b,c | --labels-file FILE) [--top K] [--json]
                              [zero-shot options] [method options; --batch-size default 8] IMAGE...

    Images: PIL bicubic resize + centre crop, [-1, 1], VAE posterior mean * scaling factor; class k is
    conditioned on the template filled with label k; no classifier-free guidance. --json adds per
    class the timesteps scored and the error at each.

    \(ZeroShotSetup.usage)

    \(MethodFlags.usage)
    """
    let valuedFlags = MethodFlags.valuedFlags.union(ZeroShotSetup.valuedFlags).union(["model", "top"])
    let switches: Set<String> = MethodFlags.switches.union(["json"])
    func run(_ args: inout Arguments) throws -> Int32 { try runZeroShot(&args) }
}

/// One class's raw errors in `zeroshot --json`: the timesteps it was scored at, in scoring order,
/// and the unweighted eps-space error at each.
private struct ClassErrors: Encodable {
    let timesteps: [Int]
    let errors: [Double]
}

/// One image's answer for `zeroshot --json` (snake_case keys, sorted).
private struct ZeroShotAnswer: Encodable {
    let path: String
    let prediction: Int
    let className: String
    let probabilities: [Double]
    let meanErrors: [Double?]
    let calls: Int
    /// Per class (label order): the timesteps and errors it was scored on.
    let errors: [ClassErrors]
}

/// `diffclass zeroshot --model SD_DIR --labels a,b,c | --labels-file F [--template T] [--image-size N]
/// [method flags as eval] IMAGE...`: zero-shot classification with a Stable Diffusion pipeline
/// folder, as the Diffusion Classifier's public code does it: each image is resized (PIL bicubic,
/// shorter side to N, default 512), centre-cropped, mapped to [-1, 1] and encoded to VAE latents
/// (posterior mean * scaling factor); class k is conditioned on the text encoder's embedding of
/// the template filled with label k; no classifier-free guidance. Every file is image index 0
/// (its seeded noise does not depend on its position). Unreadable files are reported on stderr,
/// the others still classified, exit status 1.
func runZeroShot(_ args: inout Arguments) throws -> Int32 {
    guard let modelPath = args.string("model") else { throw UsageError("zeroshot needs --model SD_DIR (a diffusers pipeline folder)") }
    let json = args.flag("json")
    let top = try args.int("top", range: 1...100_000) ?? 3
    let (template, imageSize) = try ZeroShotSetup.readTemplateAndSize(&args)
    let labels = try ZeroShotSetup.readLabels(&args)
    let weightStorage = try ZeroShotSetup.readWeightStorage(&args)
    let flags = try MethodFlags(&args, defaultBatchSize: ZeroShotModel.defaultBatchSize)
    try args.finish(command: "zeroshot", takesArguments: true)
    let files = args.positional
    guard !files.isEmpty else { throw UsageError("zeroshot needs image files: diffclass zeroshot --model SD_DIR --labels a,b IMAGE...") }

    let setup = try ZeroShotModel(folder: URL(fileURLWithPath: modelPath), labels: labels, template: template, imageSize: imageSize,
                                  weightStorage: weightStorage)
    ZeroShotSetup.warnAboutTruncatedPrompts(setup)
    let settings = try ZeroShotSetup.settings(flags, model: setup, modelPath: modelPath, dataset: "files", split: "none")
    let classifier = try settings.makeClassifier(model: setup.model, schedule: setup.pipeline.schedule, batchSize: flags.batchSize)
    if !json {
        print("zeroshot: \(files.count) files, \(labels.count) classes, prompts like '\(setup.prompts[0])', \(imageSize)px, "
            + "\(settings.method.summary), loss \(settings.loss.rawValue), seed \(settings.seed), weights \(weightStorage.rawValue)")
        print("zeroshot: \(flags.tauDescription(settings, modelFolder: nil))")
    }
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return labelFiles(files) { file in
        let x0 = try setup.latents(URL(fileURLWithPath: file))
        let (c, scorer) = try classifier.classifyKeepingScorer(x0, imageIndex: 0)
        if json {
            let errors = labels.indices.map { k in
                ClassErrors(timesteps: scorer.probeIDs[k].map { scorer.probes[$0].timestep }, errors: scorer.errors[k])
            }
            let answer = ZeroShotAnswer(path: file, prediction: c.prediction, className: labels[c.prediction],
                                        probabilities: c.probabilities, meanErrors: c.meanErrors, calls: c.calls, errors: errors)
            return String(decoding: try encoder.encode(answer), as: UTF8.self)
        } else {
            return rankedLine(file: file, names: labels, c, top: top)
        }
    }
}
