import Foundation

/// A config file that failed to parse or holds values we do not support; names the file.
public struct ConfigError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}

/// diffusers' `scheduler_config.json` for DDPMScheduler / DDIMScheduler, with diffusers' key names
/// and defaults. Fields we read: the noise schedule and the prediction type; the sampling fields
/// are kept so a written file loads in diffusers unchanged.
public struct SchedulerConfig: Codable, Equatable {
    public var className: String
    public var diffusersVersion: String?
    public var numTrainTimesteps: Int
    public var betaStart: Double
    public var betaEnd: Double
    public var betaSchedule: String
    public var predictionType: String
    public var varianceType: String
    public var clipSample: Bool
    public var clipSampleRange: Double
    public var timestepSpacing: String
    public var stepsOffset: Int
    /// Betas given explicitly instead of from beta_start/beta_end/beta_schedule, and diffusers'
    /// zero-terminal-SNR rescaling: both change the schedule and neither is supported, so a
    /// config that sets them (non-null, true) is refused by `validate` rather than silently
    /// read as the plain schedule. Kept only to refuse them (absent from written files).
    public var trainedBetas: [Double]?
    public var rescaleBetasZeroSnr: Bool?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name", diffusersVersion = "_diffusers_version"
        case numTrainTimesteps = "num_train_timesteps", betaStart = "beta_start", betaEnd = "beta_end"
        case betaSchedule = "beta_schedule", predictionType = "prediction_type", varianceType = "variance_type"
        case clipSample = "clip_sample", clipSampleRange = "clip_sample_range"
        case timestepSpacing = "timestep_spacing", stepsOffset = "steps_offset"
        case trainedBetas = "trained_betas", rescaleBetasZeroSnr = "rescale_betas_zero_snr"
    }

    public init(numTrainTimesteps: Int = 1000, betaStart: Double = 0.0001, betaEnd: Double = 0.02,
                betaSchedule: String = "linear", predictionType: String = "epsilon") {
        className = "DDPMScheduler"
        diffusersVersion = "0.42.1"
        self.numTrainTimesteps = numTrainTimesteps
        self.betaStart = betaStart
        self.betaEnd = betaEnd
        self.betaSchedule = betaSchedule
        self.predictionType = predictionType
        varianceType = "fixed_small"
        clipSample = true
        clipSampleRange = 1
        timestepSpacing = "leading"
        stepsOffset = 0
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SchedulerConfig()
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? d.className
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        numTrainTimesteps = try c.decodeIfPresent(Int.self, forKey: .numTrainTimesteps) ?? d.numTrainTimesteps
        betaStart = try c.decodeIfPresent(Double.self, forKey: .betaStart) ?? d.betaStart
        betaEnd = try c.decodeIfPresent(Double.self, forKey: .betaEnd) ?? d.betaEnd
        betaSchedule = try c.decodeIfPresent(String.self, forKey: .betaSchedule) ?? d.betaSchedule
        predictionType = try c.decodeIfPresent(String.self, forKey: .predictionType) ?? d.predictionType
        varianceType = try c.decodeIfPresent(String.self, forKey: .varianceType) ?? d.varianceType
        clipSample = try c.decodeIfPresent(Bool.self, forKey: .clipSample) ?? d.clipSample
        clipSampleRange = try c.decodeIfPresent(Double.self, forKey: .clipSampleRange) ?? d.clipSampleRange
        timestepSpacing = try c.decodeIfPresent(String.self, forKey: .timestepSpacing) ?? d.timestepSpacing
        stepsOffset = try c.decodeIfPresent(Int.self, forKey: .stepsOffset) ?? d.stepsOffset
        trainedBetas = try c.decodeIfPresent([Double].self, forKey: .trainedBetas)
        rescaleBetasZeroSnr = try c.decodeIfPresent(Bool.self, forKey: .rescaleBetasZeroSnr)
    }

    /// Reads and validates a `scheduler_config.json`.
    public static func load(_ url: URL) throws -> SchedulerConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    /// Parses and validates a `scheduler_config.json`'s contents; errors name `file`.
    public static func parse(_ data: Data, file: String) throws -> SchedulerConfig {
        let config: SchedulerConfig
        do { config = try JSONDecoder().decode(SchedulerConfig.self, from: data) } catch {
            throw ConfigError(file: file, "not a valid scheduler config: \(error)")
        }
        try config.validate(file: file)
        return config
    }

    /// The most timesteps a schedule may have (diffusers' schedulers use 1000, iDDPM 4000); the
    /// schedule's arrays are allocated from this number, so a huge one is refused, not attempted.
    public static let maximumTrainTimesteps = 100_000

    public func validate(file: String) throws {
        if let trainedBetas {
            throw ConfigError(file: file, "trained_betas is set (\(trainedBetas.count) values), which is not supported: "
                + "null, with the betas from beta_start, beta_end and beta_schedule")
        }
        if rescaleBetasZeroSnr == true {
            throw ConfigError(file: file, "rescale_betas_zero_snr = true is not supported (false: the betas as beta_schedule gives them)")
        }
        guard numTrainTimesteps >= 2, numTrainTimesteps <= SchedulerConfig.maximumTrainTimesteps else {
            throw ConfigError(file: file, "num_train_timesteps must lie in 2...\(SchedulerConfig.maximumTrainTimesteps), got \(numTrainTimesteps)")
        }
        guard ["linear", "scaled_linear", "squaredcos_cap_v2"].contains(betaSchedule) else {
            throw ConfigError(file: file, "beta_schedule '\(betaSchedule)' is not supported (linear, scaled_linear, squaredcos_cap_v2)")
        }
        guard PredictionType(rawValue: predictionType) != nil else {
            throw ConfigError(file: file, "prediction_type '\(predictionType)' is not supported (epsilon, v_prediction, sample)")
        }
        guard betaStart > 0, betaEnd > 0, betaStart < 1, betaEnd < 1 else {
            throw ConfigError(file: file, "beta_start and beta_end must lie in (0, 1), got \(betaStart), \(betaEnd)")
        }
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

/// What the network predicts (diffusers' `prediction_type`).
public enum PredictionType: String, Codable, Sendable {
    case epsilon
    case vPrediction = "v_prediction"
    case sample
}
