import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine

/// `diffclass replay`: a strategy run over a recorded run's per-probe errors.
struct ReplayCommand: Command {
    let name = "replay"
    let summary = "run a strategy over the per-probe errors of a recorded run, with no U-Net calls"
    let usage = """
    usage: diffclass replay --run SRC --out RUN [method options]

    SRC is an eval run made with --save-errors --noise-by timestep; the method options are eval's, on
    the recorded timesteps (e.g. --leader-gap, or --stages on a sub-grid). Exact: equals the online
    eval with the same flags and --noise-by timestep. The seed defaults to the recorded run's.

    \(MethodFlags.usage)
    """
    let valuedFlags = MethodFlags.valuedFlags.union(["run", "out"])
    let switches: Set<String> = MethodFlags.switches
    func run(_ args: inout Arguments) throws -> Int32 { try runReplay(&args); return 0 }
}

/// `diffclass replay --run SRC [method flags] --out RUN`: runs a strategy (grid subset, stages,
/// t-test, the leader-gap rule) over the per-probe errors a recorded run saved
/// (`eval --save-errors --noise-by timestep`), with no U-Net calls, into an ordinary run folder
/// (results.jsonl, summary.json; resumable, reportable). The calls it reports are those the strategy
/// would have spent; seconds are 0. Exact: equals an online `eval` with the same flags and
/// `--noise-by timestep` whenever the strategy's timesteps are among the recorded ones.
func runReplay(_ args: inout Arguments) throws {
    guard let source = args.string("run") else { throw UsageError("replay needs --run RUN (an eval run made with --save-errors --noise-by timestep)") }
    guard let out = args.string("out") else { throw UsageError("replay needs --out RUN") }
    let seedGiven = args.string("seed") != nil
    var flags = try MethodFlags(&args)
    try args.finish(command: "replay")

    let sourceURL = URL(fileURLWithPath: source)
    let recorded = EvaluationFolder(sourceURL)
    let sourceSettings = try recorded.readSettings()
    if !seedGiven { flags.seed = sourceSettings.seed }
    if flags.noiseBy == nil { flags.noiseBy = NoiseNumbering.timestep.rawValue }
    guard flags.noiseBy == NoiseNumbering.timestep.rawValue else { throw UsageError("--noise-by: a replay uses the recorded noise, numbered by timestep") }
    let schedulerURL = URL(fileURLWithPath: sourceSettings.model).appendingPathComponent(DiffusersFolder.schedulerPath)
    let schedule = NoiseSchedule(try SchedulerConfig.load(schedulerURL))
    var settings = try flags.settings(model: sourceSettings.model, dataset: sourceSettings.dataset, split: sourceSettings.split,
                                      classes: sourceSettings.classes, schedule: schedule,
                                      modelFolder: sourceSettings.prompts == nil ? sourceSettings.model : nil)
    settings.prompts = sourceSettings.prompts
    settings.imageSize = sourceSettings.imageSize
    settings.replayOf = sourceURL.standardizedFileURL.path
    try Replay.check(source: sourceSettings, target: settings, sourcePath: source)
    let strategy = settings.method.strategy
    let T = schedule.numTrainTimesteps

    let (records, order) = try recorded.readRecords()
    guard !order.isEmpty else { throw UsageError("\(source)/results.jsonl: no results to replay") }
    var labels = [Int](repeating: -1, count: (order.max() ?? 0) + 1)
    for (i, r) in records { labels[i] = r.label }
    let classNames = replayClassNames(recorded, settings: sourceSettings)

    let run = try EvaluationRun(directory: URL(fileURLWithPath: out), settings: settings)
    let modelFolder = sourceSettings.prompts == nil ? sourceSettings.model : nil
    run.calibration = flags.calibrationUsed(settings, modelFolder: modelFolder)
    print("replay: \(order.count) images of \(source), \(settings.method.summary) -> \(out)")
    print("replay: \(flags.tauDescription(settings, modelFolder: modelFolder))")
    let placeholder = Tensor(shape: [1], [0])
    // Image-folder runs: the recorded paths go into the replay's lines too.
    let paths: [String]? = records.values.contains { $0.path != nil } ? labels.indices.map { records[$0]?.path ?? "" } : nil
    let summary = try run.run(indices: order, labels: labels, classNames: classNames, paths: paths, scope: RunScope(), batchSize: flags.batchSize,
                              image: { _ in placeholder }, classify: { _, i in
        try Replay.classify(records[i]!, strategy: strategy, range: settings.timestepRange, timesteps: T, seed: settings.seed, tau: settings.tau)
    }, timed: false)
    print(String(format: "%@, mean per-class %.2f%%, %.1f calls/image; wrote %@/summary.json",
                 accuracyText(summary), 100 * summary.meanPerClassAccuracy, summary.meanCalls, out))
}

/// The source run's class names (its summary.json), else the dataset's, else "0", "1", ...
private func replayClassNames(_ run: EvaluationFolder, settings: EvaluationSettings) -> [String] {
    if let names = run.recordedClassNames(), names.count == settings.classes { return names }
    if settings.dataset == "fashion-mnist", FashionMNIST.classNames.count == settings.classes { return FashionMNIST.classNames }
    return (0..<settings.classes).map(String.init)
}
