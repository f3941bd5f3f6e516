import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// `diffclass eval`: the diffusion classifier over a dataset split, into a resumable run folder.
struct EvalCommand: Command {
    let name = "eval"
    let summary = "classify a dataset split with a diffusion model (Li et al. 2023) into a resumable run folder"
    let usage = """
    usage: diffclass eval --model DIR (--dataset fashion-mnist | --data DIR) --out RUN [options] [class folders] [method options]
           diffclass eval --model SD_DIR --data IMAGE_FOLDER --out RUN [zero-shot options] [options] [method options]
           diffclass eval --model DIT_DIR --data IMAGE_FOLDER --out RUN [class folders] [options] [method options]

    Writes RUN/settings.json, RUN/results.jsonl (one line per image), RUN/summary.json; rerunning with
    the same settings resumes. --data DIR is an MNIST-format folder (IDX files, which hold class ids) or an
    image folder with one subfolder per class, matched to the model's classes as below; each results line
    of an image folder holds the image's path and the class names of its label and prediction. With a
    Stable Diffusion pipeline folder, the image folder's classes
    (one subfolder each) are classified zero-shot from prompts, as 'diffclass zeroshot' does.

    options:
      [--split test|train] [--limit N] [--shard I/N] (indices i % N == I of the first --limit)
      [--reuse SRC] (with --noise-by timestep: look up the (class, t) errors SRC recorded with
        --save-errors for the same images and seed; the U-Net runs only for the rest)
      [--images-in-flight N (1)] (images classified at once, their (class, timestep) pairs sharing
        U-Net calls of up to --batch-size; results are the same for any N)

    \(ClassFolderFlags.usage)

    \(MethodFlags.usage)

    \(ZeroShotSetup.usage)

    \(DiTSetup.usage)
    """
    let valuedFlags = MethodFlags.valuedFlags.union(ZeroShotSetup.valuedFlags).union(ClassFolderFlags.valuedFlags)
        .union(["model", "out", "dataset", "data", "split", "limit", "shard", "reuse", "images-in-flight"])
    let switches: Set<String> = MethodFlags.switches.union(ClassFolderFlags.switches)
    func run(_ args: inout Arguments) throws -> Int32 { try runEval(&args); return 0 }
}

/// `diffclass eval`: the diffusion classifier over a dataset split, into a resumable run folder.
func runEval(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("eval needs --model DIR") }
    if ZeroShotSetup.isPipelineFolder(modelPath) { return try runZeroShotEval(&args, modelPath: modelPath) }
    if DiTSetup.isPipelineFolder(modelPath) { return try runDiTEval(&args, modelPath: modelPath) }
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split: '\(splitName)' is not train or test") }
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let reuse = args.string("reuse")
    let classFolders = try ClassFolderFlags(&args)
    let imagesInFlight = try args.int("images-in-flight", range: 1...4096) ?? 1
    let flags = try MethodFlags(&args)
    try args.finish(command: "eval")

    let modelURL = URL(fileURLWithPath: modelPath)
    // Per model family: the predictor and schedule (an EDM denoiser over its grid of noise levels), and the dataset.
    let model: ConditionalNoisePredictor, schedule: NoiseSchedule, ds: ImageDataset, mapping: ClassFolderMapping?
    let modelNames = try ModelClassNames.load(from: modelURL)
    if EDMSetup.isEDMFolder(modelPath) {
        let (edm, classifierModel) = try EDMSetup.load(modelPath, grid: try flags.sigmaGrid())
        let loaded = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: edm.config.imgResolution,
                                             channels: edm.config.imgChannels)
        (ds, mapping) = try classFolders.apply(to: loaded, data: data, model: modelPath, modelNames: modelNames)
        guard ds.channels == edm.config.imgChannels, ds.height == edm.config.imgResolution, ds.width == edm.config.imgResolution else {
            throw UsageError("\(modelPath): the model takes \(edm.config.imgChannels)x\(edm.config.imgResolution)x\(edm.config.imgResolution) images, \(ds.name) has \(ds.channels)x\(ds.height)x\(ds.width)")
        }
        guard ds.classNames.count <= edm.labelDim else {
            throw UsageError("\(modelPath): the model has \(edm.labelDim) classes, \(ds.name) has \(ds.classNames.count)")
        }
        (model, schedule) = (classifierModel.predictor, classifierModel.schedule)
    } else {
        let (unet, unetSchedule) = try UNet2DModel.loadWithSchedule(from: modelURL)
        let loaded = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: unet.config.sampleSize?[0] ?? 28,
                                             channels: unet.config.inChannels)
        (ds, mapping) = try classFolders.apply(to: loaded, data: data, model: modelPath, modelNames: modelNames)
        try ds.checkFits(unet.config, model: modelPath)
        _ = try ClassifierModel(unet: unet, schedule: unetSchedule, classes: ds.classNames.count)  // enough class embeddings
        (model, schedule) = (unet, unetSchedule)
    }
    let classes = ds.classNames.count

    var settings = try flags.settings(model: modelURL.standardizedFileURL.path, dataset: ds.name, split: splitName, classes: classes,
                                      schedule: schedule, modelFolder: modelPath)
    settings.modelHash = try ModelFolderHash.of(modelURL)
    let batchSize = flags.batchSize
    let classifier = try settings.makeClassifier(model: model, schedule: schedule, batchSize: batchSize, imagesInFlight: imagesInFlight)

    let scope = RunScope(limit: limit, shard: shard, datasetCount: ds.count)
    let indices = scope.indices(datasetCount: ds.count)
    if let reuse {
        classifier.reusedErrors = try RecordedErrors.load(from: URL(fileURLWithPath: reuse), for: settings, weights: classifier.weights,
                                                          indices: indices, labels: ds.labels)
    }
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    run.calibration = flags.calibrationUsed(settings, modelFolder: modelPath)
    if let reuse {
        run.reusedFrom = URL(fileURLWithPath: reuse).standardizedFileURL.path
        print("eval: reusing the recorded errors of \(classifier.reusedErrors.count) of these images from \(reuse)")
    }
    print("eval: \(indices.count) images of \(ds.name) \(splitName), \(classes) classes, \(settings.method.summary), "
        + "loss \(settings.loss.rawValue), weighting \(settings.weighting.name), seed \(settings.seed), batch \(batchSize), "
        + "\(imagesInFlight) images in flight, \(threadCount()) -> \(out)")
    printComputeDType("eval")
    print("eval: \(flags.tauDescription(settings, modelFolder: modelPath))")
    if let mapping { print(ClassFolderFlags.describe(mapping)) }
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: ds.labels, classNames: ds.classNames, paths: ds.paths, scope: scope, batchSize: batchSize,
                              image: { ds.images([$0]) }, classify: { try classifier.classify($0, imageIndex: $1) },
                              batcher: classifier.batcher, progress: printProgress)
    printSummary(summary, out: out)
    if let m = summary.meanModelCalls { print(String(format: "U-Net passes run: %.1f per image (the rest reused from %@)", m, reuse ?? "")) }
}

/// `diffclass eval --model SD_DIR --data IMAGE_FOLDER [--labels ... | --labels-file F] [--template T]
/// [--image-size N] --out RUN`: a folder dataset (one subfolder per class; labels default to the
/// subfolder names) through the zero-shot path, into a resumable run folder as `eval` writes.
/// The prompts and image size are part of `settings.json`.
func runZeroShotEval(_ args: inout Arguments, modelPath: String) throws {
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    let splitName = args.string("split") ?? "test"
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let (template, imageSize) = try ZeroShotSetup.readTemplateAndSize(&args)
    let (folder, listing, labels) = try ZeroShotSetup.readImageFolder(&args, command: "eval")
    let weightStorage = try ZeroShotSetup.readWeightStorage(&args)
    let flags = try MethodFlags(&args, defaultBatchSize: ZeroShotModel.defaultBatchSize)
    try args.finish(command: "eval")

    let setup = try ZeroShotModel(folder: URL(fileURLWithPath: modelPath), labels: labels, template: template, imageSize: imageSize,
                                  weightStorage: weightStorage)
    ZeroShotSetup.warnAboutTruncatedPrompts(setup)
    var settings = try ZeroShotSetup.settings(flags, model: setup, modelPath: modelPath, dataset: folder.standardizedFileURL.lastPathComponent,
                                              split: splitName)
    settings.modelHash = try ModelFolderHash.of(URL(fileURLWithPath: modelPath))
    let classifier = try settings.makeClassifier(model: setup.model, schedule: setup.pipeline.schedule, batchSize: flags.batchSize)
    let scope = RunScope(limit: limit, shard: shard, datasetCount: listing.files.count)
    let indices = scope.indices(datasetCount: listing.files.count)
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    run.calibration = flags.calibrationUsed(settings, modelFolder: nil)
    print("eval: \(indices.count) images of \(folder.lastPathComponent), \(labels.count) classes, prompts like '\(setup.prompts[0])', "
        + "\(imageSize)px, \(settings.method.summary), loss \(settings.loss.rawValue), seed \(settings.seed), "
        + "batch \(flags.batchSize), weights \(weightStorage.rawValue), \(threadCount()) -> \(out)")
    printComputeDType("eval")
    print("eval: \(flags.tauDescription(settings, modelFolder: nil))")
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: listing.labels, classNames: labels, scope: scope, batchSize: flags.batchSize,
                              image: { try setup.latents(listing.files[$0]) },
                              classify: { try classifier.classify($0, imageIndex: $1) }, progress: printProgress)
    printSummary(summary, out: out)
}

/// Progress of a run: on a terminal a live line (`\r`: bar, elapsed, ETA, running accuracy,
/// calls/image); in a log one line per twentieth of the images (and at least one a minute).
final class ProgressPrinter {
    let terminal = isatty(STDOUT_FILENO) != 0
    let start = Date()
    var lastLine = Date()

    func callAsFunction(_ p: EvaluationProgress) {
        let now = Date()
        if terminal {
            print("\r" + p.text(elapsed: now.timeIntervalSince(start), barWidth: 24) + "  ", terminator: p.done == p.total ? "\n" : "")
        } else if p.isLogLine(secondsSinceLastLine: now.timeIntervalSince(lastLine)) {
            print(p.text(elapsed: now.timeIntervalSince(start)))
            lastLine = now
        }
        fflush(stdout)
    }
}

/// A fresh progress printer for a run.
var printProgress: (EvaluationProgress) -> Void { ProgressPrinter().callAsFunction }

/// "1 thread", "4 threads": the engine's thread count.
func threadCount() -> String { Engine.threads == 1 ? "1 thread" : "\(Engine.threads) threads" }

/// "COMMAND: matrix products in bf16 ..." when `--compute-dtype bf16` is on (nothing for fp32).
func printComputeDType(_ command: String) {
    if Engine.computeDType == .bfloat16 { print("\(command): matrix products in bf16 (--compute-dtype bf16; results differ from fp32 runs)") }
}

/// The run's summary line.
func printSummary(_ summary: EvaluationSummary, out: String) {
    print(String(format: "%@, mean per-class %.2f%%, %.0f calls/image; wrote %@/summary.json",
                 accuracyText(summary), 100 * summary.meanPerClassAccuracy, summary.meanCalls, out))
}

/// "accuracy 71.00% ± 4.54 (n = 100)", plus ", top-5 90.00% ± 3.00" with more than 5 classes
/// (with 5 or fewer it is always 100%).
func accuracyText(_ summary: EvaluationSummary) -> String {
    String(format: "accuracy %.2f%% ± %.2f (n = %d)", 100 * summary.accuracy, 100 * summary.accuracyStderr, summary.n)
        + (summary.classNames.count > 5 ? String(format: ", top-5 %.2f%% ± %.2f", 100 * summary.top5Accuracy, 100 * summary.top5AccuracyStderr) : "")
}
