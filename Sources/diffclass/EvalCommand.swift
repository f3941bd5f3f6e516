import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine

/// `diffclass eval`: the diffusion classifier over a dataset split, into a resumable run folder.
func runEval(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("eval needs --model DIR") }
    guard let out = args.string("out") else { throw UsageError("eval needs --out RUN") }
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split: '\(splitName)' is not train or test") }
    let limit = try args.int("limit", range: 1...Int.max)
    let shard = try args.string("shard").map { try RunScope.parseShard($0) }
    let seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    let batchSize = try args.int("batch-size", range: 1...65536) ?? 256
    let stages = args.string("stages")
    let nTimesteps = try args.int("n-timesteps", range: 1...1_000_000)
    let ttest = args.flag("ttest")
    let timestepsText = args.string("timesteps")
    let tRangeText = args.string("t-range")
    let lossText = args.string("loss") ?? "l2"
    let weighting = args.string("weighting") ?? "uniform"
    let tauFlag = try args.double("tau", range: 0...1e9)
    let calibrationPath = args.string("calibration")
    let noise = args.string("noise")
    let minScores = try args.int("min-scores", range: 2...1_000_000)
    let maxScores = try args.int("max-scores", range: 1...1_000_000)
    let pValue = try args.double("p-value", range: 0...1)
    let testEvery = try args.int("test-every", range: 1...1_000_000)
    try args.finish(command: "eval")

    guard tauFlag == nil || calibrationPath == nil else { throw UsageError("give --tau or --calibration, not both") }
    let calibration = try calibrationPath.map { try CalibrationResult.load(URL(fileURLWithPath: $0)) }
    let tau = calibration?.tau ?? tauFlag ?? 1

    // The model and its schedule.
    let modelURL = URL(fileURLWithPath: modelPath)
    let model = try UNet2DModel.load(from: modelURL)
    let schedulerURL = modelURL.appendingPathComponent(DiffusersFolder.schedulerPath)
    guard FileManager.default.fileExists(atPath: schedulerURL.path) else {
        throw UsageError("\(schedulerURL.path): missing (eval needs the model's scheduler config)")
    }
    let schedule = NoiseSchedule(try SchedulerConfig.load(schedulerURL))
    let T = schedule.timesteps

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

    // The method.
    guard let loss = ErrorLoss(rawValue: lossText) else { throw UsageError("--loss: '\(lossText)' is not l2, l1 or huber") }
    _ = try TimestepWeighting(parsing: weighting)
    var tRange = [0, T]
    if let text = tRangeText {
        let p = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard p.count == 2, let a = p[0], let b = p[1], 0 <= a, a < b, b <= T else {
            throw UsageError("--t-range: '\(text)' is not A:B with 0 <= A < B <= \(T)")
        }
        tRange = [a, b]
    }
    var sampler = timestepsText ?? (ttest ? "uniform" : "grid")
    var list: [Int]?
    if !["grid", "uniform", "stratified"].contains(sampler) {
        let values = sampler.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw UsageError("--timesteps: '\(sampler)' is not grid, uniform, stratified or a list t1,t2,...")
        }
        list = values.map { $0! }
        sampler = "explicit"
    }
    let method: EvaluationSettings.Method
    var count: Int?
    var stagesText: String?
    if ttest {
        guard stages == nil, nTimesteps == nil else { throw UsageError("--ttest: give --max-scores, not --stages or --n-timesteps") }
        method = .ttest
        count = list == nil ? (maxScores ?? 2000) : nil
    } else {
        guard minScores == nil, maxScores == nil, pValue == nil, testEvery == nil else {
            throw UsageError("--min-scores, --max-scores, --p-value and --test-every need --ttest")
        }
        if let n = nTimesteps {
            guard stages == nil else { throw UsageError("give --stages or --n-timesteps, not both") }
            method = .fixed
            count = n
        } else if list != nil {
            guard stages == nil else { throw UsageError("--stages uses the official grid; drop --timesteps") }
            method = .fixed
        } else {
            method = .staged
            stagesText = try StagedElimination(parsing: stages ?? "5:50,1:500").text
            guard sampler == "grid" else { throw UsageError("--stages uses the official grid; drop --timesteps \(sampler)") }
        }
    }
    let settings = EvaluationSettings(
        model: modelURL.standardizedFileURL.path, dataset: ds.name, split: splitName, classes: classes, schedule: schedule,
        method: method, stages: stagesText, timesteps: sampler, nTimesteps: count, timestepList: list, tRange: tRange,
        loss: loss, weighting: weighting, tau: tau, seed: seed, noise: noise.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
        minScores: ttest ? (minScores ?? 20) : nil, pValue: ttest ? (pValue ?? 2e-3) : nil, testEvery: ttest ? (testEvery ?? 1) : nil)
    if let calibration, let calibrationPath { try calibration.check(against: settings, file: calibrationPath) }
    let classifier = try settings.makeClassifier(model: model, schedule: schedule, batchSize: batchSize)

    let scope = RunScope(limit: limit, shard: shard)
    let indices = scope.indices(datasetCount: ds.count)
    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    let method_ = method == .staged ? "stages \(stagesText!)" : method == .ttest ? "paired t-test, \(sampler) timesteps" : "\(sampler) timesteps"
    print("eval: \(indices.count) images of \(ds.name) \(splitName), \(classes) classes, \(method_), loss \(loss.rawValue), "
        + "weighting \(weighting), seed \(seed), batch \(batchSize), \(Engine.threads) threads -> \(out)")
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
}
