import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import Robustness
import StableDiffusion
import TensorEngine

/// `diffclass robust`: robust accuracy under attacks, into a resumable run folder.
struct RobustCommand: Command {
    let name = "robust"
    let summary = "robust accuracy of the diffusion classifier (or RDC with --lm) under attacks, AutoAttack-style"
    let usage = """
    usage: diffclass robust --model DIR (--dataset fashion-mnist | --data DIR) --eps 8/255 --out RUN [options]
           diffclass robust --model SD_DIR --data IMAGE_FOLDER --eps 8/255 --out RUN [zero-shot options] [options]

    Per image: the clean prediction, then the attacks in order until one succeeds. Writes
    RUN/settings.json, RUN/results.jsonl (a line per image), RUN/summary.json (clean and robust
    accuracy ± stderr, breaks per attack, U-Net passes and seconds per attacked image); rerunning with
    the same settings resumes. With a Stable Diffusion pipeline the attacks differentiate through the
    VAE, and RDC's unconditional model is the empty prompt.

    options:
      [--split test|train] [--limit N] [--shard I/N] (indices i % N == I of the first --limit)
      [--norm linf|l2] [--attacks apgd-ce,apgd-t,apgd-dlr,pgd,square (default apgd-ce,apgd-t)]
      [--iterations N (100)] [--square-queries N (5000)] [--eot N (1)] [--n-timesteps T (10)]
      [--lm steps=5,eta=8/255,variant=paper|code,grad=exact|first-order|bpda,...] [--seed S] [--batch-size N (64)]
      [--save-adv] (RUN/adv/INDEX.png, INDEX-clean.png and adv/pairs.png of the broken images)
      [--noise FILE] (safetensors tensor eps [N, C, H, W]: timestep or noise level j uses eps[j], for every image)

    \(EDMSetup.usage)
      With an EDM model the classifier scores every level with RDC's weight (--n-timesteps does not apply) and
      --lm runs in sigma-space (sigma ~ U[0.4, 0.6] as drawn; the zero label vector as the unconditional model).

    \(ClassFolderFlags.usage)

    \(ZeroShotSetup.usage)
    """
    let valuedFlags = ZeroShotSetup.valuedFlags.union(ClassFolderFlags.valuedFlags).union(["model", "out", "dataset", "data", "split", "limit", "shard", "norm", "eps",
                                                       "attacks", "iterations", "square-queries", "eot", "n-timesteps", "lm", "seed",
                                                       "batch-size", "noise", "sigmas", "sigma-density"])
    let switches: Set<String> = ClassFolderFlags.switches.union(["save-adv"])
    func run(_ args: inout Arguments) throws -> Int32 { try runRobust(&args); return 0 }
}

/// `diffclass robust`: AutoAttack-style robust accuracy of the diffusion classifier (or RDC with
/// `--lm`) over a dataset split, into a resumable run folder (see `RobustnessRun`). The model is
/// a class-conditional diffusers folder or a Stable Diffusion pipeline folder (then the data is
/// an image folder, classes are prompts as for `zeroshot`). `--shard I/N` takes the indices
/// i % N == I of the first `--limit` images; `diffclass merge` joins the shards.
func runRobust(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("robust needs --model DIR") }
    guard let out = args.string("out") else { throw UsageError("robust needs --out RUN") }
    let splitName = args.string("split") ?? "test"
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split: '\(splitName)' is not train or test") }
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let norm = try PerturbationNorm(parsing: args.string("norm") ?? PerturbationNorm.linf.rawValue)
    guard let eps = args.string("eps") else { throw UsageError("robust needs --eps (e.g. 8/255)") }
    let attacks = try args.string("attacks").map { try AttackKind.list(parsing: $0) } ?? AttackKind.defaultSequence
    let iterations = try args.int("iterations", range: 1...1_000_000) ?? RobustnessSettings.defaultIterations
    let squareQueries = try args.int("square-queries", range: 1...10_000_000) ?? RobustnessSettings.defaultSquareQueries
    let eot = try args.int("eot", range: 1...10_000) ?? RobustnessSettings.defaultEOTDraws
    let timesteps = try args.int("n-timesteps", range: 1...1_000_000) ?? RobustnessSettings.defaultTimestepCount
    let lm = try args.string("lm").map { try LikelihoodMaximization(parsing: $0) }
    let seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    let batchSize = try args.int("batch-size", range: 1...65536) ?? 64
    let saveAdv = args.flag("save-adv")
    let noise = args.string("noise").map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    let sigmasText = args.string("sigmas"), densityText = args.string("sigma-density")
    let isEDM = EDMSetup.isEDMFolder(modelPath)
    guard isEDM || (sigmasText == nil && densityText == nil) else { throw UsageError("--sigmas and --sigma-density need an EDM model folder") }

    func settings(dataset: String) throws -> RobustnessSettings {
        try RobustnessSettings(model: URL(fileURLWithPath: modelPath).standardizedFileURL.path, dataset: dataset, split: splitName,
                               norm: norm, epsText: eps, attacks: attacks, iterations: iterations, squareQueries: squareQueries,
                               eotDraws: eot, timestepCount: timesteps, lm: lm, seed: seed)
    }
    func withNoise(_ s: RobustnessSettings) -> RobustnessSettings {
        var s = s
        s.noiseFile = noise
        return s
    }
    // Per model family: the classifier's model, the settings, and the images ([1, C, H, W] in [0, 1]).
    let model: ClassifierModel, runSettings: RobustnessSettings
    let labels: [Int], classNames: [String], datasetName: String, count: Int
    let image: (Int) throws -> Tensor
    if ZeroShotSetup.isPipelineFolder(modelPath) {
        let (template, imageSize) = try ZeroShotSetup.readTemplateAndSize(&args)
        let (folder, listing, names) = try ZeroShotSetup.readImageFolder(&args, command: "robust")
        let storage = try ZeroShotSetup.readWeightStorage(&args)
        try args.finish(command: "robust")
        let zeroShot = try ZeroShotModel(folder: URL(fileURLWithPath: modelPath), labels: names, template: template, imageSize: imageSize,
                                         weightStorage: storage)
        ZeroShotSetup.warnAboutTruncatedPrompts(zeroShot)
        model = zeroShot.classifierModel(unconditional: lm != nil)
        datasetName = folder.standardizedFileURL.lastPathComponent
        var s = try settings(dataset: datasetName)
        s.prompts = zeroShot.prompts
        s.imageSize = imageSize
        s.weightStorage = storage
        runSettings = withNoise(s)
        labels = listing.labels
        classNames = names
        count = listing.files.count
        image = { (try zeroShot.image(listing.files[$0]) + 1) * 0.5 }
    } else if isEDM {
        let dataset = args.string("dataset"), data = args.string("data")
        let classFolders = try ClassFolderFlags(&args)
        try args.finish(command: "robust")
        let grid = try EDMSetup.grid(sigmasText)
        let (edm, full) = try EDMSetup.load(modelPath, grid: grid)
        let loaded = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: edm.config.imgResolution,
                                             channels: edm.config.imgChannels)
        let (ds, mapping) = try classFolders.apply(to: loaded, data: data, model: modelPath,
                                                   modelNames: try ModelClassNames.load(from: URL(fileURLWithPath: modelPath)))
        if let mapping { print(ClassFolderFlags.describe(mapping)) }
        guard ds.channels == edm.config.imgChannels, ds.height == edm.config.imgResolution, ds.width == edm.config.imgResolution else {
            throw UsageError("\(modelPath): the model takes \(edm.config.imgChannels)x\(edm.config.imgResolution)x\(edm.config.imgResolution) images, \(ds.name) has \(ds.channels)x\(ds.height)x\(ds.width)")
        }
        guard ds.classNames.count <= edm.labelDim else {
            throw UsageError("\(modelPath): the model has \(edm.labelDim) classes, \(ds.name) has \(ds.classNames.count)")
        }
        var m = full
        m.conditions = Array(0..<ds.classNames.count)
        model = m
        datasetName = ds.name
        var s = try settings(dataset: ds.name)
        s.sigmas = grid
        s.sigmaDensity = try EDMSetup.density(densityText)
        runSettings = withNoise(s)
        labels = ds.labels
        classNames = ds.classNames
        count = ds.count
        image = { (ds.images([$0]) + 1) * 0.5 }
    } else {
        let dataset = args.string("dataset"), data = args.string("data")
        let classFolders = try ClassFolderFlags(&args)
        try args.finish(command: "robust")
        let (unet, schedule) = try UNet2DModel.loadWithSchedule(from: URL(fileURLWithPath: modelPath))
        let loaded = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: unet.config.sampleSize?[0] ?? 28,
                                             channels: unet.config.inChannels)
        let (ds, mapping) = try classFolders.apply(to: loaded, data: data, model: modelPath,
                                                   modelNames: try ModelClassNames.load(from: URL(fileURLWithPath: modelPath)))
        if let mapping { print(ClassFolderFlags.describe(mapping)) }
        model = try ClassifierModel(unet: unet, schedule: schedule, classes: ds.classNames.count)
        datasetName = ds.name
        runSettings = withNoise(try settings(dataset: ds.name))
        labels = ds.labels
        classNames = ds.classNames
        count = ds.count
        image = { (ds.images([$0]) + 1) * 0.5 }
    }
    let (classifier, counter) = try RobustnessRun.makeClassifier(settings: runSettings, model: model, batchSize: batchSize)
    let indices = RunScope(limit: limit, shard: shard).indices(datasetCount: count)
    let shardText = shard.map { "\($0.index)/\($0.count)" }
    let run = try RobustnessRun(directory: URL(fileURLWithPath: out), settings: runSettings)
    print("robust: \(indices.count) images of \(datasetName) \(splitName)\(shardText.map { " (shard \($0))" } ?? ""), \(norm.rawValue) eps \(eps), "
        + "attacks \(attacks.map(\.rawValue).joined(separator: ",")), \(iterations) iterations, "
        + (runSettings.sigmas.map { "sigmas \($0) (\(runSettings.sigmaDensity.rawValue) density), " } ?? "T \(timesteps), ")
        + "\(runSettings.lm.map { "RDC lm \($0)" } ?? "diffusion classifier"), eot \(eot), seed \(seed) -> \(out)")
    printComputeDType("robust")
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: labels, classNames: classNames, limit: limit, shard: shardText, classifier: classifier,
                              counter: counter, image: image, saveAdversarial: saveAdv) { r, done, total in
        print(String(format: "%d/%d  #%d label %d clean %d  %@  %.0f U-Net passes  %.1f s", done, total, r.index, r.label,
                     r.cleanPrediction, r.verdict.rawValue + (r.brokenBy.map { " by \($0.rawValue)" } ?? ""), Double(r.unetPasses), r.seconds))
        fflush(stdout)
    }
    print(String(format: "clean %.2f%% ± %.2f, robust %.2f%% ± %.2f (n = %d); %.0f U-Net passes, %.1f s per attacked image; wrote %@/summary.json",
                 100 * summary.cleanAccuracy, 100 * summary.cleanStderr, 100 * summary.robustAccuracy, 100 * summary.robustStderr,
                 summary.n, summary.meanUnetPassesPerAttacked, summary.meanSecondsPerAttacked, out))
}
