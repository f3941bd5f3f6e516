import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine

/// `diffclass analyze`: the paper's timestep findings on a model.
struct AnalyzeCommand: Command {
    let name = "analyze"
    let summary = "the paper's timestep findings on a model"
    let usage = """
    usage: diffclass analyze --model DIR (--dataset fashion-mnist | --data DIR) --out RUN [--limit N (50)] [--seed S]
                             [--split test|train] [--points N (20)] [--counts 1,2,5,10,20,50] [--batch-size N]
                             [--labels a,b,c | --labels-file FILE] [--class-map FILE | --folder-order] (as for eval)

    Accuracy from one timestep against t, and against the number of timesteps with shared vs
    independent noise; writes RUN/analysis.json (then run diffclass report RUN).
    """
    let valuedFlags = ClassFolderFlags.valuedFlags.union(["model", "out", "dataset", "data", "split", "limit", "seed", "batch-size", "points", "counts"])
    let switches: Set<String> = ClassFolderFlags.switches
    func run(_ args: inout Arguments) throws -> Int32 { try runAnalyze(&args); return 0 }
}

/// `diffclass analyze`: the paper's timestep findings on a model (see `TimestepAnalysis`):
/// accuracy from a single timestep against t, and accuracy against the number of timesteps
/// with shared versus independent noise. Writes `RUN/analysis.json`; `diffclass report RUN`
/// draws it.
func runAnalyze(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("analyze needs --model DIR") }
    guard let out = args.string("out") else { throw UsageError("analyze needs --out RUN") }
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split: '\(splitName)' is not train or test") }
    let limit = try args.int("limit", range: 1...Int.max) ?? 50
    let seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    let batchSize = try args.int("batch-size", range: 1...65536) ?? 256
    let points = try args.int("points", range: 1...1_000_000) ?? 20
    let countsText = args.string("counts") ?? "1,2,5,10,20,50"
    let classFolders = try ClassFolderFlags(&args)
    try args.finish(command: "analyze")
    let counts = countsText.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw UsageError("--counts: '\(countsText)' is not a list of positive integers") }

    let modelURL = URL(fileURLWithPath: modelPath)
    let (model, schedule) = try UNet2DModel.loadWithSchedule(from: modelURL)
    let loaded = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: model.config.sampleSize?[0] ?? 28,
                                         channels: model.config.inChannels)
    let (ds, mapping) = try classFolders.apply(to: loaded, data: data, model: modelPath, modelNames: try ModelClassNames.load(from: modelURL))
    if let mapping { print(ClassFolderFlags.describe(mapping)) }
    let classes = ds.classNames.count
    _ = try ClassifierModel(unet: model, schedule: schedule, classes: classes)  // enough class embeddings
    var analysis: TimestepAnalysis
    analysis = try TimestepAnalysis(T: schedule.numTrainTimesteps, points: points, counts: counts.map { $0! }, seed: seed)
    analysis.batchSize = batchSize
    let indices = Array(0..<min(limit, ds.count))
    let calls = indices.count * classes * (points + 2 * (counts.map { $0! }.max() ?? 0))
    print("analyze: \(indices.count) images of \(ds.name) \(splitName), \(classes) classes, \(points) single timesteps, counts \(countsText), "
        + "seed \(seed), \(calls) U-Net calls, \(threadCount()) -> \(out)")
    fflush(stdout)
    let start = Date()
    let r = try analysis.run(model: model, schedule: schedule, conditions: Array(0..<classes), images: indices.map { ds.images([$0]) },
                             labels: indices.map { ds.labels[$0] }, indices: indices) { done, total in
        print(String(format: "%d/%d images  %.1f s", done, total, Date().timeIntervalSince(start)))
        fflush(stdout)
    }
    let result = AnalysisResult(model: modelURL.standardizedFileURL.path, dataset: ds.name, split: splitName, n: indices.count, classes: classes,
                                seed: seed, timesteps: schedule.numTrainTimesteps, singleTimestep: r.singleTimestep, timestepCounts: r.timestepCounts,
                                countTimesteps: r.countTimesteps, calls: r.calls)
    let dir = URL(fileURLWithPath: out)
    do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
        throw UsageError("\(out): cannot create the run folder: \(error.localizedDescription)")
    }
    try result.write(to: dir.appendingPathComponent("analysis.json"))
    let best = r.singleTimestep.max { $0.accuracy < $1.accuracy }
    for c in r.timestepCounts {
        print(String(format: "%3d timesteps: shared %.2f%% ± %.2f, independent %.2f%% ± %.2f", c.count, 100 * c.sharedAccuracy,
                     100 * c.sharedStderr, 100 * c.independentAccuracy, 100 * c.independentStderr))
    }
    if let best { print(String(format: "best single timestep t = %d: %.2f%%", best.t, 100 * best.accuracy)) }
    print("wrote \(out)/analysis.json (diffclass report \(out) draws it)")
}
