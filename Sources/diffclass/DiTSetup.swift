import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import Images
import LatentDiT
import NeuralNetworks
import TensorEngine

/// `eval` and `classify` on a diffusers DiT pipeline folder (`DiTPipeline`): images go through
/// ADM's `center_crop_arr` to the pipeline's image size (`Image.centerCroppedInput`, as the public
/// code's `eval_prob_dit.py`), then the VAE (posterior mean x scaling factor), and are classified
/// over the transformer's class ids with the same classifier, strategies and run folders as every
/// other model.
enum DiTSetup {
    /// Pairs per transformer call without `--batch-size`.
    static let defaultBatchSize = 32
    static let usage = """
    DiT pipeline folders (model_index.json naming DiTPipeline): class names from its id2label, or
    --labels-file FILE (one per line, line k = class k) / --labels a,b,c for every class;
    [--weights-dtype fp32|fp16|bf16]. Images are center-cropped as ADM/DiT do (halve with a box
    filter while the short side is at least twice the size, bicubic to the size, centre crop) to the
    pipeline's image size (sample_size x the VAE's factor: 256 for DiT-XL/2-256).
    """

    static func isPipelineFolder(_ path: String) -> Bool { DiTPipeline.isPipelineFolder(URL(fileURLWithPath: path)) }

    static func load(_ modelPath: String, classNames: [String]?, weightStorage: WeightStorage) throws -> DiTPipeline {
        try DiTPipeline.load(from: URL(fileURLWithPath: modelPath), classNames: classNames, weightStorage: weightStorage)
    }

    /// A file's latent [1, C, h, w].
    static func latents(_ pipeline: DiTPipeline, _ file: URL) throws -> Tensor {
        pipeline.latents(try Image.centerCroppedInput(file, size: pipeline.imageSize))
    }
}

/// `diffclass eval --model DIT_DIR --data IMAGE_FOLDER --out RUN`: an ImageNet-style tree (one
/// folder per class, matched to the pipeline's classes by name, `--class-map FILE` or
/// `--folder-order`) into a resumable run folder.
func runDiTEval(_ args: inout Arguments, modelPath: String) throws {
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    guard let data = args.string("data") else { throw UsageError("eval with a DiT pipeline needs --data IMAGE_FOLDER (one subfolder per class)") }
    if args.string("dataset") != nil { throw UsageError("--dataset: eval with a DiT pipeline reads --data IMAGE_FOLDER") }
    let splitName = args.string("split") ?? "test"
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let classFolders = try ClassFolderFlags(&args)
    let weightStorage = try ZeroShotSetup.readWeightStorage(&args)
    let flags = try MethodFlags(&args, defaultBatchSize: DiTSetup.defaultBatchSize)
    try args.finish(command: "eval")

    let folder = URL(fileURLWithPath: data)
    let listing = try ImageFolder.files(folder)
    let pipeline = try DiTSetup.load(modelPath, classNames: classFolders.givenNames, weightStorage: weightStorage)
    let mapping = try classFolders.mapping(folders: listing.classNames, root: data, model: modelPath, modelNames: pipeline.classNames)
    let labels = listing.labels.map { mapping.classIDs[$0] }
    let paths = listing.files.map { ImageFolder.relativePath($0, root: folder) }

    var settings = try flags.settings(model: URL(fileURLWithPath: modelPath).standardizedFileURL.path,
                                      dataset: folder.standardizedFileURL.lastPathComponent, split: splitName,
                                      classes: pipeline.classNames.count, schedule: pipeline.schedule)
    settings.imageSize = pipeline.imageSize
    settings.weightStorage = weightStorage
    settings.modelHash = try ModelFolderHash.of(URL(fileURLWithPath: modelPath))
    let classifier = try settings.makeClassifier(model: pipeline.transformer, schedule: pipeline.schedule, batchSize: flags.batchSize)
    let scope = RunScope(limit: limit, shard: shard, datasetCount: listing.files.count)
    let indices = scope.indices(datasetCount: listing.files.count)
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    print("eval: \(indices.count) images of \(folder.lastPathComponent), DiT pipeline with \(pipeline.classNames.count) classes, "
        + "\(pipeline.imageSize)px center crop, \(settings.method.summary), loss \(settings.loss.rawValue), tau \(settings.tau), "
        + "seed \(settings.seed), batch \(flags.batchSize), weights \(weightStorage.rawValue), \(Engine.threads) threads -> \(out)")
    print(ClassFolderFlags.describe(mapping))
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: labels, classNames: pipeline.classNames, paths: paths, scope: scope,
                              batchSize: flags.batchSize, image: { try DiTSetup.latents(pipeline, listing.files[$0]) },
                              classify: { try classifier.classify($0, imageIndex: $1) }, progress: printProgress)
    printSummary(summary, out: out)
}

/// `diffclass classify --model DIT_DIR IMAGE...`: each file center-cropped, encoded and classified
/// as image index 0 over the pipeline's classes.
func runDiTClassify(_ args: inout Arguments, modelPath: String, json: Bool, top: Int) throws -> Int32 {
    let names: [String]?
    if let text = args.string("labels") {
        names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    } else if let file = args.string("labels-file") {
        do { names = try ModelClassNames.lines(of: URL(fileURLWithPath: file)) } catch { throw UsageError("--labels-file: \(error)") }
    } else {
        names = nil
    }
    let weightStorage = try ZeroShotSetup.readWeightStorage(&args)
    let flags = try MethodFlags(&args, defaultBatchSize: DiTSetup.defaultBatchSize)
    try args.finish(command: "classify", takesArguments: true)
    let files = args.positional
    guard !files.isEmpty else { throw UsageError("classify needs image files: diffclass classify --model DIR IMAGE...") }
    let pipeline = try DiTSetup.load(modelPath, classNames: names, weightStorage: weightStorage)
    var settings = try flags.settings(model: URL(fileURLWithPath: modelPath).standardizedFileURL.path, dataset: "files", split: "none",
                                      classes: pipeline.classNames.count, schedule: pipeline.schedule)
    settings.imageSize = pipeline.imageSize
    let classifier = try settings.makeClassifier(model: pipeline.transformer, schedule: pipeline.schedule, batchSize: flags.batchSize)
    if !json {
        print("classify: \(files.count) files, DiT pipeline with \(pipeline.classNames.count) classes, \(pipeline.imageSize)px center crop, "
            + "\(settings.method.summary), loss \(settings.loss.rawValue), tau \(settings.tau), seed \(settings.seed)")
    }
    return labelFiles(files) { file in
        let c = try classifier.classify(try DiTSetup.latents(pipeline, URL(fileURLWithPath: file)), imageIndex: 0)
        return json ? try imageAnswerJSON(path: file, names: pipeline.classNames, c) : rankedLine(file: file, names: pipeline.classNames, c, top: top)
    }
}
