import NeuralNetworks

/// An error of the classifier: a bad setting (named by its `Setting`, which a front end maps
/// to its own vocabulary) or an unusable input (named by its file).
public struct ClassifierError: SettingNamingError, Equatable {
    public let text: ErrorText
    public init(_ text: ErrorText) { self.text = text }
    /// "`parameter`: message".
    public init(_ setting: Setting, _ message: ErrorText) { text = "\(setting): \(message)" }
}

/// The settings and inputs the classifiers name in their errors (see `Setting`): mostly the
/// `settings.json` keys of an evaluation.
extension Setting {
    /// The official adaptive schedule's stages (`keep:n,keep:n`).
    public static let stages = Setting("stages")
    /// Images classified at once, their U-Net calls shared (does not change results).
    public static let imagesInFlight = Setting("images_in_flight")
    /// The timestep sampler: grid, grid:B, uniform, stratified, or a list of timesteps.
    public static let timesteps = Setting("timesteps")
    /// How many timesteps a fixed evaluation (or a robustness run's grid) scores.
    public static let nTimesteps = Setting("n_timesteps")
    /// How many timesteps a sequential rule may score at most (its sampler's count).
    public static let maxScores = Setting("max_scores")
    public static let minScores = Setting("min_scores")
    public static let pValue = Setting("p_value")
    public static let testEvery = Setting("test_every")
    public static let maxProbes = Setting("max_probes")
    public static let gap = Setting("gap")
    /// The part A..<B of 0..<T timesteps come from.
    public static let timestepRange = Setting("t_range")
    public static let loss = Setting("loss")
    public static let weighting = Setting("weighting")
    public static let tau = Setting("tau")
    /// A fitted temperature file (`CalibrationResult`).
    public static let calibration = Setting("calibration")
    /// A noise file (`FileNoise`).
    public static let noise = Setting("noise")
    public static let noiseBy = Setting("noise_by")
    public static let saveErrors = Setting("save_errors")
    /// A recorded run whose errors are reused (`RecordedErrors`).
    public static let reuse = Setting("reuse")
    /// A recorded run that is replayed.
    public static let recordedRun = Setting("recorded_run")
    /// The shard of a run (`RunScope`).
    public static let shard = Setting("shard")
    /// RDC's likelihood maximization options.
    public static let lm = Setting("lm")
}

extension Setting {
    /// The timestep analysis: how many single timesteps, and the timestep counts compared.
    public static let points = Setting("points")
    public static let counts = Setting("counts")
}
