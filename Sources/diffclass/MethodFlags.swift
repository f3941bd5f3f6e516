import Diffusion
import DiffusionClassifier
import Foundation

/// The classifier flags `eval` and `classify` share: timesteps (`--stages`, `--n-timesteps`,
/// `--timesteps`, `--ttest` and its options, `--t-range`), `--loss`, `--weighting`,
/// `--tau`/`--calibration`, `--noise`, `--seed`, `--batch-size`. Read them before `finish()`;
/// `settings(...)` checks them against the model's schedule and builds `EvaluationSettings`.
struct MethodFlags {
    static let valuedFlags: Set<String> = ["seed", "batch-size", "stages", "n-timesteps", "timesteps", "t-range", "loss", "weighting", "tau",
                                           "calibration", "noise", "min-scores", "max-scores", "p-value", "test-every", "noise-by", "gap",
                                           "max-probes", "sigmas", "sigma-density"]
    static let switches: Set<String> = ["ttest", "leader-gap", "save-errors"]
    static let usage = """
    method options:
      timesteps: --stages KEEP:N,... (official adaptive schedule; default 5:50,1:500)
               | --n-timesteps N [--timesteps grid|grid:B|uniform|stratified] | --timesteps T1,T2,...
                 (grid:B: the N-point stage sub-grid of the B-point grid, e.g. grid:500 with N = 50 is stage
                 one of --stages 5:50,1:500; the t-test and leader-gap rules shuffle it per image)
               | --ttest [--max-scores N (2000)] [--min-scores N (20)] [--p-value P (2e-3)] [--test-every N (1)]
                 [--max-probes N] [--timesteps ... (uniform)]
               | --leader-gap [--gap Z (2)] [--max-scores N (50)] [--min-scores N (5)] [--test-every N (1)]
                 [--max-probes N] (ours: drop a class once its gap to the leader is Z pooled standard errors)
      [--t-range A:B] [--seed S] [--batch-size N] [--loss l2|l1|huber] [--weighting uniform|exp|exp:K|elbo]
      [--tau X | --calibration CAL.json] (default: the model folder's calibration.json when present; --tau 1 for none)
      [--noise FILE]
      [--noise-by probe|timestep] (eps numbered by probe order, the public code's, or by timestep: then every
        strategy on a grid sees the same eps at each t and can be replayed)
      [--save-errors] (each results line also holds every per-probe error, for 'diffclass replay' and --reuse)
      [--weighting rdc:paper|rdc:code] (RDC's weight over noise levels; the default for EDM models)

    \(EDMSetup.usage)
    """

    var seed: UInt64, batchSize: Int
    var stages: String?, nTimesteps: Int?, ttest: Bool, timesteps: String?, tRange: String?
    var loss: String, weighting: String?, tau: Double?, calibrationPath: String?, noise: String?
    var minScores: Int?, maxScores: Int?, pValue: Double?, testEvery: Int?
    var noiseBy: String?, saveErrors: Bool
    var leaderGap: Bool, gap: Double?, maxProbes: Int?
    /// EDM models: `--sigmas A:B:N` and `--sigma-density` (see `EDMSetup`).
    var sigmas: String?, sigmaDensity: String?

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
        weighting = args.string("weighting")
        tau = try args.double("tau", range: 0...1e9)
        // tau 0 makes every probability 1/classes whatever the errors: a mistake, not a setting.
        if let tau, tau <= 0 { throw UsageError("--tau expects a positive number (probabilities are softmax(-tau x error)), got '\(tau)'") }
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
        // Z 0 drops every class behind the leader after --min-scores probes, whatever the noise.
        if let gap, gap <= 0 { throw UsageError("--gap expects a positive number of standard errors (e.g. 2), got '\(gap)'") }
        maxProbes = try args.int("max-probes", range: 1...1_000_000)
        sigmas = args.string("sigmas")
        sigmaDensity = args.string("sigma-density")
    }

    /// The grid of noise levels for an EDM model (`--sigmas`, RDC's by default).
    func sigmaGrid() throws -> SigmaGrid { try EDMSetup.grid(sigmas) }

    /// Refuses a minimum above the maximum (the rule would stop at the maximum before it may test).
    func checkMinScores(_ minimum: Int, maxScores: Int) throws {
        guard minimum <= maxScores else {
            throw UsageError("--min-scores \(minimum) is above the \(maxScores) timesteps per class of --max-scores\(self.maxScores == nil ? " (its default)" : "")")
        }
    }

    /// A sequential rule's timesteps: `--timesteps` (the rule's kind by default) drawing
    /// `--max-scores` (the rule's count by default).
    func sequentialSampler(default d: TimestepSampler) throws -> TimestepSampler {
        try TimestepSampler(parsing: timesteps ?? d.name, count: maxScores ?? d.count)
    }

    /// The name of the calibration file a model folder may hold (`diffclass calibrate` writes one).
    static let modelCalibrationFile = "calibration.json"

    /// Where tau comes from: `--calibration FILE`; else, without `--tau`, `modelFolder`'s
    /// `calibration.json` when it exists (`isDefault`); else nil (`--tau`, or tau 1).
    func calibrationSource(modelFolder: String?) -> (path: String, isDefault: Bool)? {
        if let calibrationPath { return (calibrationPath, false) }
        guard tau == nil, let modelFolder else { return nil }
        let path = URL(fileURLWithPath: modelFolder).appendingPathComponent(Self.modelCalibrationFile).path
        return FileManager.default.fileExists(atPath: path) ? (path, true) : nil
    }

    /// The calibration file `settings` took tau from (nil: `--tau`, uncalibrated, or a model
    /// folder's file fitted for another loss or weighting).
    func calibrationUsed(_ settings: EvaluationSettings, modelFolder: String?) -> String? {
        guard let source = calibrationSource(modelFolder: modelFolder),
              let c = try? CalibrationResult.load(URL(fileURLWithPath: source.path)), c.tau == settings.tau else { return nil }
        return source.path
    }

    /// How the header says where tau came from: "tau 3838.706392627248 (calibrated: FILE)",
    /// "tau 2 (--tau)" or "tau 1: uncalibrated ...".
    func tauDescription(_ settings: EvaluationSettings, modelFolder: String?) -> String {
        // Six significant digits: settings.json keeps the exact value.
        func shown(_ t: Double) -> String { String(format: "%.6g", t) }
        if let file = calibrationUsed(settings, modelFolder: modelFolder) { return "tau \(shown(settings.tau)) (calibrated: \(file))" }
        if let tau, tau != 1 { return "tau \(shown(tau)) (--tau)" }
        var text = "tau 1: uncalibrated, probabilities nearly uniform (fit tau with 'diffclass calibrate', then --calibration CAL.json)"
        if let source = calibrationSource(modelFolder: modelFolder), source.isDefault {
            text += "; \(source.path) not used: fitted for another --loss or --weighting"
        }
        return text
    }

    /// The settings for `classes` classes of `model` under `schedule`; checks `--calibration`.
    /// Defaults come from the library (`StagedElimination.defaultStages`, `TTestSettings`,
    /// `LeaderGapSettings`); here only the flags' combinations are checked.
    /// `modelFolder`: a class-conditional model's folder, whose `calibration.json` gives tau when
    /// neither `--tau` nor `--calibration` is given (skipped when fitted for another loss or
    /// weighting; `tauDescription` says so).
    func settings(model: String, dataset: String, split: String, classes: Int, schedule: NoiseSchedule,
                  modelFolder: String? = nil) throws -> EvaluationSettings {
        let T = schedule.numTrainTimesteps
        guard tau == nil || calibrationPath == nil else { throw UsageError("give --tau or --calibration, not both") }
        let source = calibrationSource(modelFolder: modelFolder)
        var calibration = try source.map { try CalibrationResult.load(URL(fileURLWithPath: $0.path)) }
        guard let lossValue = ErrorLoss(rawValue: loss) else { throw UsageError("--loss: '\(loss)' is not l2, l1 or huber") }
        // A noise-level grid (EDM): RDC's weight and every level by default; elsewhere the grid flags are refused.
        let grid = schedule.sigmaGrid
        guard grid != nil || (sigmas == nil && sigmaDensity == nil) else {
            throw UsageError("--sigmas and --sigma-density need an EDM model folder")
        }
        if let sigmaDensity, let weighting, !weighting.hasPrefix("rdc") {
            throw UsageError("--sigma-density \(sigmaDensity) is RDC's weight; it does not go with --weighting \(weighting)")
        }
        let weightingValue: TimestepWeighting
        if let weighting {
            weightingValue = try TimestepWeighting(parsing: weighting)
        } else if grid != nil {
            weightingValue = .rdc(try EDMSetup.density(sigmaDensity))
        } else {
            weightingValue = .uniform
        }
        let methodGiven = ttest || leaderGap || stages != nil || nTimesteps != nil || timesteps != nil
        var range = 0..<T
        if let text = tRange {
            let p = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard p.count == 2, let a = p[0], let b = p[1], 0 <= a, a < b, b <= T else {
                throw UsageError("--t-range: '\(text)' is not A:B with 0 <= A < B <= \(T)")
            }
            range = a..<b
        }
        guard !(ttest && leaderGap) else { throw UsageError("give --ttest or --leader-gap, not both") }
        guard gap == nil || leaderGap else { throw UsageError("--gap needs --leader-gap") }
        guard maxProbes == nil || ttest || leaderGap else { throw UsageError("--max-probes needs --ttest or --leader-gap") }
        let method: ClassificationMethod
        if let grid, !methodGiven {
            method = .fixed(.grid(grid.count))
        } else if ttest {
            guard stages == nil, nTimesteps == nil else { throw UsageError("--ttest: give --max-scores, not --stages or --n-timesteps") }
            var t = TTestSettings()
            t.sampler = try sequentialSampler(default: t.sampler)
            t.minScores = minScores ?? t.minScores
            try checkMinScores(t.minScores, maxScores: t.sampler.count)
            t.pValue = pValue ?? t.pValue
            t.testEvery = testEvery ?? t.testEvery
            t.maxProbes = maxProbes
            method = .ttest(t)
        } else if leaderGap {
            guard stages == nil, nTimesteps == nil else { throw UsageError("--leader-gap: give --max-scores, not --stages or --n-timesteps") }
            guard pValue == nil else { throw UsageError("--p-value needs --ttest (--leader-gap takes --gap)") }
            var g = LeaderGapSettings()
            g.sampler = try sequentialSampler(default: g.sampler)
            g.minScores = minScores ?? g.minScores
            try checkMinScores(g.minScores, maxScores: g.sampler.count)
            g.gap = gap ?? g.gap
            g.testEvery = testEvery ?? g.testEvery
            g.maxProbes = maxProbes
            method = .leaderGap(g)
        } else {
            guard minScores == nil, maxScores == nil, pValue == nil, testEvery == nil else {
                throw UsageError("--min-scores, --max-scores, --p-value and --test-every need --ttest (or --leader-gap)")
            }
            let sampler = try timesteps.map { try TimestepSampler(parsing: $0, count: nTimesteps ?? 1) }
            if let n = nTimesteps {
                guard stages == nil else { throw UsageError("give --stages or --n-timesteps, not both") }
                method = .fixed(try sampler ?? TimestepSampler(parsing: "grid", count: n))
            } else if let sampler, case .explicit = sampler {
                guard stages == nil else { throw UsageError("--stages uses the official grid; drop --timesteps") }
                method = .fixed(sampler)
            } else {
                if let timesteps, timesteps != "grid" { throw UsageError("--stages uses the official grid; drop --timesteps \(timesteps)") }
                let given = try stages.map { try StagedElimination(parsing: $0).stages }
                if let over = given?.first(where: { $0.keep > classes }) {
                    throw UsageError("--stages: the stage \(over.keep):\(over.samples) keeps \(over.keep) classes, there are \(classes)")
                }
                method = .staged(given ?? StagedElimination.defaultStages)
            }
        }
        var settings = EvaluationSettings(
            model: model, dataset: dataset, split: split, classes: classes, schedule: schedule, method: method, timestepRange: range,
            loss: lossValue, weighting: weightingValue, tau: calibration?.tau ?? tau ?? 1, seed: seed,
            noiseFile: noise.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        if let noiseBy {
            guard let numbering = NoiseNumbering(rawValue: noiseBy) else { throw UsageError("--noise-by: '\(noiseBy)' is not probe or timestep") }
            guard numbering == .probe || noise == nil else { throw UsageError("--noise-by timestep: a --noise file is used in probe order") }
            settings.noiseNumbering = numbering
        }
        settings.saveErrors = saveErrors
        if let c = calibration, let source {
            do {
                try c.check(against: settings, file: source.path)
            } catch where source.isDefault {
                calibration = nil
                settings.tau = 1
            }
        }
        return settings
    }
}
