import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import Robustness
import TensorEngine

/// `diffclass robust`: AutoAttack-style robust accuracy of the diffusion classifier (or RDC with
/// `--lm`) over a dataset split, into a resumable run folder (see `RobustnessRun`). `--shard I/N`
/// takes the indices i % N == I of the first `--limit` images; `diffclass merge` joins the shards.
func runRobust(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("robust needs --model DIR") }
    guard let out = args.string("out") else { throw UsageError("robust needs --out RUN") }
    let dataset = args.string("dataset"), data = args.string("data")
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
    try args.finish(command: "robust")

    let (model, schedule, modelURL) = try loadModelAndSchedule(modelPath, command: "robust")
    let imageSize = model.config.sampleSize?[0] ?? 28
    let ds = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: imageSize, channels: model.config.inChannels)
    let classes = ds.classNames.count
    guard let embeds = model.config.numClassEmbeds, embeds >= classes else {
        throw UsageError("\(modelPath): the model has \(model.config.numClassEmbeds.map(String.init) ?? "no") class embeddings, \(ds.name) has \(classes) classes")
    }
    let settings = try RobustnessSettings(model: modelURL.standardizedFileURL.path, dataset: ds.name, split: splitName, norm: norm,
                                          epsText: eps, attacks: attacks, iterations: iterations, squareQueries: squareQueries,
                                          eotDraws: eot, timestepCount: timesteps, lm: lm, seed: seed)
    let (classifier, counter) = try RobustnessRun.makeClassifier(settings: settings, model: model, schedule: schedule,
                                                                 classes: classes, batchSize: batchSize)
    let indices = RunScope(limit: limit, shard: shard).indices(datasetCount: ds.count)
    let shardText = shard.map { "\($0.index)/\($0.count)" }
    let run = try RobustnessRun(directory: URL(fileURLWithPath: out), settings: settings)
    print("robust: \(indices.count) images of \(ds.name) \(splitName)\(shardText.map { " (shard \($0))" } ?? ""), \(settings.norm.rawValue) eps \(eps), attacks \(attacks.map(\.rawValue).joined(separator: ",")), "
        + "\(iterations) iterations, T \(timesteps), \(settings.lm.map { "RDC lm \($0)" } ?? "diffusion classifier"), eot \(eot), seed \(seed) -> \(out)")
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: ds.labels, classNames: ds.classNames, limit: limit, shard: shardText, classifier: classifier, counter: counter,
                              image: { (ds.images([$0]) + 1) * 0.5 }, saveAdversarial: saveAdv) { r, done, total in
        print(String(format: "%d/%d  #%d label %d clean %d  %@  %.0f U-Net passes  %.1f s", done, total, r.index, r.label,
                     r.cleanPrediction, r.verdict.rawValue + (r.brokenBy.map { " by \($0.rawValue)" } ?? ""), Double(r.unetPasses), r.seconds))
        fflush(stdout)
    }
    print(String(format: "clean %.2f%% ± %.2f, robust %.2f%% ± %.2f (n = %d); %.0f U-Net passes, %.1f s per attacked image; wrote %@/summary.json",
                 100 * summary.cleanAccuracy, 100 * summary.cleanStderr, 100 * summary.robustAccuracy, 100 * summary.robustStderr,
                 summary.n, summary.meanUnetPassesPerAttacked, summary.meanSecondsPerAttacked, out))
}
