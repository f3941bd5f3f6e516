import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// `diffclass eval`: the diffusion classifier over a dataset split, into a resumable run folder.
func runEval(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("eval needs --model DIR") }
    if ZeroShotSetup.isPipelineFolder(modelPath) { return try runZeroShotEval(&args, modelPath: modelPath) }
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split: '\(splitName)' is not train or test") }
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let reuse = args.string("reuse")
    let flags = try MethodFlags(&args)
    try args.finish(command: "eval")

    let (model, schedule, modelURL) = try loadModelAndSchedule(modelPath, command: "eval")

    // The data.
    let imageSize = model.config.sampleSize?[0] ?? 28
    let ds = try DatasetLocator.load(dataset: dataset, data: data, split: split, imageSize: imageSize, channels: model.config.inChannels)
    let classes = ds.classNames.count
    guard let embeds = model.config.numClassEmbeds, embeds >= classes else {
        throw UsageError("\(modelPath): the model has \(model.config.numClassEmbeds.map(String.init) ?? "no") class embeddings, \(ds.name) has \(classes) classes")
    }
    guard ds.channels == model.config.inChannels, model.config.sampleSize.map({ $0 == [ds.height, ds.width] }) ?? true else {
        throw UsageError("\(modelPath): the model takes \(model.config.inChannels)x\(model.config.sampleSize ?? []) images, \(ds.name) has \(ds.channels)x\(ds.height)x\(ds.width)")
    }

    let settings = try flags.settings(model: modelURL.standardizedFileURL.path, dataset: ds.name, split: splitName, classes: classes,
                                      schedule: schedule)
    let batchSize = flags.batchSize
    let classifier = try settings.makeClassifier(model: model, schedule: schedule, batchSize: batchSize)

    let scope = RunScope(limit: limit, shard: shard)
    let indices = scope.indices(datasetCount: ds.count)
    if let reuse {
        classifier.reusedErrors = try RecordedErrors.load(from: URL(fileURLWithPath: reuse), for: settings, weights: classifier.weights,
                                                          indices: indices, labels: ds.labels)
    }
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    if let reuse {
        run.reusedFrom = URL(fileURLWithPath: reuse).standardizedFileURL.path
        print("eval: reusing the recorded errors of \(classifier.reusedErrors.count) of these images from \(reuse)")
    }
    print("eval: \(indices.count) images of \(ds.name) \(splitName), \(classes) classes, \(settings.method.summary), "
        + "loss \(settings.loss.rawValue), weighting \(settings.weighting.name), tau \(settings.tau), seed \(settings.seed), batch \(batchSize), "
        + "\(Engine.threads) threads -> \(out)")
    fflush(stdout)
    let summary = try run.run(indices: indices, labels: ds.labels, classNames: ds.classNames, scope: scope, batchSize: batchSize,
                              image: { ds.images([$0]) }, classify: { try classifier.classify($0, imageIndex: $1) }) { p in
        print(String(format: "%d/%d  acc %.2f%%  calls/image %.0f  %.3f images/s", p.done, p.total, 100 * p.accuracy,
                     p.meanCalls, p.imagesPerSecond))
        fflush(stdout)
    }
    print(String(format: "accuracy %.2f%% ± %.2f (n = %d), mean per-class %.2f%%, %.0f calls/image; wrote %@/summary.json",
                 100 * summary.accuracy, 100 * summary.accuracyStderr, summary.n, 100 * summary.meanPerClassAccuracy,
                 summary.meanCalls, out))
    if let m = summary.meanModelCalls { print(String(format: "U-Net passes run: %.1f per image (the rest reused from %@)", m, reuse ?? "")) }
}
