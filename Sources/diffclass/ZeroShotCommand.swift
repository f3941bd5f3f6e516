import Datasets
import Diffusion
import DiffusionClassifier
import NeuralNetworks
import StableDiffusion
import Foundation
import TensorEngine

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
    try args.finish(command: "zeroshot")
    let files = args.positional
    guard !files.isEmpty else { throw UsageError("zeroshot needs image files: diffclass zeroshot --model SD_DIR --labels a,b IMAGE...") }

    let setup = try ZeroShotModel(folder: URL(fileURLWithPath: modelPath), labels: labels, template: template, imageSize: imageSize,
                                  weightStorage: weightStorage)
    let settings = try ZeroShotSetup.settings(flags, model: setup, modelPath: modelPath, dataset: "files", split: "none")
    let classifier = try settings.makeClassifier(model: setup.model, schedule: setup.pipeline.schedule, batchSize: flags.batchSize)
    if !json {
        print("zeroshot: \(files.count) files, \(labels.count) classes, prompts like '\(setup.prompts[0])', \(imageSize)px, "
            + "\(settings.method.summary), loss \(settings.loss.rawValue), tau \(settings.tau), seed \(settings.seed), weights \(weightStorage.rawValue)")
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

/// `diffclass eval --model SD_DIR --data IMAGE_FOLDER [--labels ... | --labels-file F] [--template T]
/// [--image-size N] --out RUN`: a folder dataset (one subfolder per class; labels default to the
/// subfolder names) through the zero-shot path, into a resumable run folder as `eval` writes.
/// The prompts and image size are part of `settings.json`.
func runZeroShotEval(_ args: inout Arguments, modelPath: String) throws {
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    guard let data = args.string("data") else { throw UsageError("eval with a Stable Diffusion pipeline needs --data IMAGE_FOLDER") }
    if args.string("dataset") != nil { throw UsageError("--dataset: eval with a Stable Diffusion pipeline reads --data IMAGE_FOLDER") }
    let splitName = args.string("split") ?? "test"
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let (template, imageSize) = try ZeroShotSetup.readTemplateAndSize(&args)
    let folder = URL(fileURLWithPath: data)
    let listing = try ImageFolder.files(folder)
    let labels = try ZeroShotSetup.readLabels(&args, fallback: listing.classNames)
    guard labels.count == listing.classNames.count else {
        throw UsageError("--labels: \(labels.count) labels for the \(listing.classNames.count) class folders of \(data) (\(listing.classNames.joined(separator: ", ")))")
    }
    let weightStorage = try ZeroShotSetup.readWeightStorage(&args)
    let flags = try MethodFlags(&args, defaultBatchSize: ZeroShotModel.defaultBatchSize)
    try args.finish(command: "eval")

    let setup = try ZeroShotModel(folder: URL(fileURLWithPath: modelPath), labels: labels, template: template, imageSize: imageSize,
                                  weightStorage: weightStorage)
    let settings = try ZeroShotSetup.settings(flags, model: setup, modelPath: modelPath, dataset: folder.standardizedFileURL.lastPathComponent,
                                              split: splitName)
    let classifier = try settings.makeClassifier(model: setup.model, schedule: setup.pipeline.schedule, batchSize: flags.batchSize)
    let scope = RunScope(limit: limit, shard: shard)
    let indices = scope.indices(datasetCount: listing.files.count)
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    print("eval: \(indices.count) images of \(folder.lastPathComponent), \(labels.count) classes, prompts like '\(setup.prompts[0])', "
        + "\(imageSize)px, \(settings.method.summary), loss \(settings.loss.rawValue), tau \(settings.tau), seed \(settings.seed), "
        + "batch \(flags.batchSize), weights \(weightStorage.rawValue), \(Engine.threads) threads -> \(out)")
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: listing.labels, classNames: labels, scope: scope, batchSize: flags.batchSize,
                              image: { try setup.latents(listing.files[$0]) },
                              classify: { try classifier.classify($0, imageIndex: $1) }) { p in
        print(String(format: "%d/%d  acc %.2f%%  calls/image %.0f  %.3f images/s", p.done, p.total, 100 * p.accuracy,
                     p.meanCalls, p.imagesPerSecond))
        fflush(stdout)
    }
    print(String(format: "accuracy %.2f%% ± %.2f (n = %d), mean per-class %.2f%%, %.0f calls/image; wrote %@/summary.json",
                 100 * summary.accuracy, 100 * summary.accuracyStderr, summary.n, 100 * summary.meanPerClassAccuracy,
                 summary.meanCalls, out))
}
