import Diffusion
import DiffusionClassifier
import Foundation

/// The classifier flags `eval` and `classify` share: timesteps (`--stages`, `--n-timesteps`,
/// `--timesteps`, `--ttest` and its options, `--t-range`), `--loss`, `--weighting`,
/// `--tau`/`--calibration`, `--noise`, `--seed`, `--batch-size`. Read them before `finish()`;
/// `settings(...)` checks them against the model's schedule and builds `EvaluationSettings`.
struct MethodFlags {
    var seed: UInt64, batchSize: Int
    var stages: String?, nTimesteps: Int?, ttest: Bool, timesteps: String?, tRange: String?
    var loss: String, weighting: String, tau: Double?, calibrationPath: String?, noise: String?
    var minScores: Int?, maxScores: Int?, pValue: Double?, testEvery: Int?
    var noiseBy: String?, saveErrors: Bool
    var leaderGap: Bool, gap: Double?, maxProbes: Int?

    /// `defaultBatchSize`: pairs per U-Net call without `--batch-size` (256; zero-shot SD uses 8).
    init(_ args: inout Arguments, defaultBatchSize: Int = 256) throws {
        seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
        batchSize = try args.int("batch-size", range: 1...65536) ?? defaultBatchSize
        stages = args.string("stages")
        nTimesteps = try args.int("n-timesteps", range: 1...1_000_000)
        ttest = args.flag("ttest")
        timesteps = args.string("timesteps")
        tRange = args.string("t-range")
        loss = args.string("loss") ?? "l2"
        weighting = args.string("weighting") ?? "uniform"
        tau = try args.double("tau", range: 0...1e9)
        calibrationPath = args.string("calibration")
        noise = args.string("noise")
        minScores = try args.int("min-scores", range: 2...1_000_000)
        maxScores = try args.int("max-scores", range: 1...1_000_000)
        pValue = try args.double("p-value", range: 0...1)
        testEvery = try args.int("test-every", range: 1...1_000_000)
        noiseBy = args.string("noise-by")
        saveErrors = args.flag("save-errors")
        leaderGap = args.flag("leader-gap")
        gap = try args.double("gap", range: 0...1e6)
        maxProbes = try args.int("max-probes", range: 1...1_000_000)
    }

    /// The settings for `classes` classes of `model` under `schedule`; checks `--calibration`.
    func settings(model: String, dataset: String, split: String, classes: Int, schedule: NoiseSchedule) throws -> EvaluationSettings {
        let T = schedule.timesteps
        guard tau == nil || calibrationPath == nil else { throw UsageError("give --tau or --calibration, not both") }
        let calibration = try calibrationPath.map { try CalibrationResult.load(URL(fileURLWithPath: $0)) }
        guard let lossValue = ErrorLoss(rawValue: loss) else { throw UsageError("--loss: '\(loss)' is not l2, l1 or huber") }
        _ = try TimestepWeighting(parsing: weighting)
        var range = [0, T]
        if let text = tRange {
            let p = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard p.count == 2, let a = p[0], let b = p[1], 0 <= a, a < b, b <= T else {
                throw UsageError("--t-range: '\(text)' is not A:B with 0 <= A < B <= \(T)")
            }
            range = [a, b]
        }
        guard !(ttest && leaderGap) else { throw UsageError("give --ttest or --leader-gap, not both") }
        guard gap == nil || leaderGap else { throw UsageError("--gap needs --leader-gap") }
        guard maxProbes == nil || ttest || leaderGap else { throw UsageError("--max-probes needs --ttest or --leader-gap") }
        var sampler = timesteps ?? (ttest ? "uniform" : "grid")
        var list: [Int]?
        if !["grid", "uniform", "stratified"].contains(sampler) && !sampler.hasPrefix("grid:") {
            let values = sampler.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw UsageError("--timesteps: '\(sampler)' is not grid, grid:B, uniform, stratified or a list t1,t2,...")
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
        } else if leaderGap {
            guard stages == nil, nTimesteps == nil else { throw UsageError("--leader-gap: give --max-scores, not --stages or --n-timesteps") }
            guard pValue == nil else { throw UsageError("--p-value needs --ttest (--leader-gap takes --gap)") }
            method = .leaderGap
            count = list == nil ? (maxScores ?? LeaderGapRule.defaultGridSize) : nil
        } else {
            guard minScores == nil, maxScores == nil, pValue == nil, testEvery == nil else {
                throw UsageError("--min-scores, --max-scores, --p-value and --test-every need --ttest (or --leader-gap)")
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
        var settings = EvaluationSettings(
            model: model, dataset: dataset, split: split, classes: classes, schedule: schedule,
            method: method, stages: stagesText, timesteps: sampler, nTimesteps: count, timestepList: list, tRange: range,
            loss: lossValue, weighting: weighting, tau: calibration?.tau ?? tau ?? 1, seed: seed,
            noise: noise.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
            minScores: ttest ? (minScores ?? 20) : leaderGap ? (minScores ?? LeaderGapRule.defaultMinScores) : nil,
            pValue: ttest ? (pValue ?? 2e-3) : nil, testEvery: ttest || leaderGap ? (testEvery ?? 1) : nil)
        if leaderGap { settings.gap = gap ?? LeaderGapRule.defaultThreshold }
        if leaderGap || ttest { settings.maxProbes = maxProbes }
        if let noiseBy {
            guard noiseBy == "timestep" || noiseBy == "probe" else { throw UsageError("--noise-by: '\(noiseBy)' is not probe or timestep") }
            guard noiseBy == "probe" || noise == nil else { throw UsageError("--noise-by timestep: a --noise file is used in probe order") }
            settings.noiseBy = noiseBy == "timestep" ? "timestep" : nil
        }
        if saveErrors { settings.saveErrors = true }
        if let calibration, let calibrationPath { try calibration.check(against: settings, file: calibrationPath) }
        return settings
    }

    /// "stages 5:50,1:500", "paired t-test, uniform timesteps" or "grid timesteps".
    static func describe(_ s: EvaluationSettings) -> String {
        switch s.method {
        case .staged: return "stages \(s.stages ?? "")"
        case .ttest: return "paired t-test, \(s.timesteps) timesteps" + (s.maxProbes.map { ", at most \($0) probes" } ?? "")
        case .leaderGap: return "leader-gap rule (gap \(s.gap ?? 0)), \(s.timesteps) timesteps" + (s.maxProbes.map { ", at most \($0) probes" } ?? "")
        case .fixed: return "\(s.timesteps) timesteps"
        }
    }
}

/// Loads a diffusers model folder and its `scheduler/scheduler_config.json` (required).
func loadModelAndSchedule(_ path: String, command: String) throws -> (UNet2DModel, NoiseSchedule, URL) {
    let modelURL = URL(fileURLWithPath: path)
    let model = try UNet2DModel.load(from: modelURL)
    let schedulerURL = modelURL.appendingPathComponent(DiffusersFolder.schedulerPath)
    guard FileManager.default.fileExists(atPath: schedulerURL.path) else {
        throw UsageError("\(schedulerURL.path): missing (\(command) needs the model's scheduler config)")
    }
    return (model, NoiseSchedule(try SchedulerConfig.load(schedulerURL)), modelURL)
}
