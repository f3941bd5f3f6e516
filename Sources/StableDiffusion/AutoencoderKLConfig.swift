import Diffusion
import Foundation

/// diffusers' `AutoencoderKL` config (`vae/config.json`) with diffusers' key names and defaults.
///
/// Supported: DownEncoderBlock2D / UpDecoderBlock2D, SiLU, the mid-block attention (or none with
/// `mid_block_add_attention` false), `use_quant_conv` / `use_post_quant_conv`, `scaling_factor`
/// (default 0.18215, as in SD 1.x / 2.x configs that predate the field). `force_upcast` and
/// `sample_size` are read and have no effect. Rejected, with the field named: `shift_factor`,
/// `latents_mean` / `latents_std` (SD3 / SDXL-style latent normalisation), other block types.
public struct AutoencoderKLConfig: Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var downBlockTypes: [BlockType] = [.downEncoderBlock2D]
    public var upBlockTypes: [BlockType] = [.upDecoderBlock2D]
    public var blockOutChannels = [64]
    public var layersPerBlock = 1
    public var latentChannels = 4
    public var normNumGroups = 32
    public var sampleSize: Int?
    public var scalingFactor: Double = 0.18215
    public var useQuantConv = true
    public var usePostQuantConv = true
    public var midBlockAddAttention = true

    public init() {}

    /// Parses a config.json's contents; errors name `file` and the field.
    public static func parse(_ data: Data, file: String) throws -> AutoencoderKLConfig {
        let f = try ConfigFields(data, file: file)
        try f.requireClassName("AutoencoderKL")
        if let a = f.json["act_fn"], a != .string("silu") { throw f.fail("act_fn \(a) is not supported (silu)") }
        for key in ["shift_factor", "latents_mean", "latents_std"] {
            if let v = f.value(key) { throw f.fail("\(key) = \(v) is not supported (null)") }
        }
        var c = AutoencoderKLConfig()
        try f.int("in_channels", &c.inChannels); try f.int("out_channels", &c.outChannels)
        try f.blockTypes("down_block_types", &c.downBlockTypes, what: "down block type", supported: [.downEncoderBlock2D])
        try f.blockTypes("up_block_types", &c.upBlockTypes, what: "up block type", supported: [.upDecoderBlock2D])
        if let j = f.value("block_out_channels") {
            guard case .array = j, let v = j.intsPerBlock(1) else { throw f.fail("block_out_channels must be a list of integers, got \(j)") }
            c.blockOutChannels = v
        }
        try f.int("layers_per_block", &c.layersPerBlock); try f.int("latent_channels", &c.latentChannels)
        try f.int("norm_num_groups", &c.normNumGroups)
        if let j = f.value("sample_size") {
            guard let n = j.integer else { throw f.fail("sample_size must be an integer, got \(j)") }
            c.sampleSize = n
        }
        if let j = f.value("scaling_factor") {
            guard case let .number(n) = j else { throw f.fail("scaling_factor must be a number, got \(j)") }
            c.scalingFactor = n
        }
        try f.bool("use_quant_conv", &c.useQuantConv); try f.bool("use_post_quant_conv", &c.usePostQuantConv)
        try f.bool("mid_block_add_attention", &c.midBlockAddAttention)
        try c.validate(file: file)
        return c
    }

    public static func load(_ url: URL) throws -> AutoencoderKLConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        return try parse(data, file: url.path)
    }

    public func validate(file: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, m) }
        let n = blockOutChannels.count
        guard n >= 1, blockOutChannels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels must be positive, got \(blockOutChannels)") }
        guard downBlockTypes.count == n, upBlockTypes.count == n else {
            throw fail("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(n)) must have equal lengths")
        }
        for t in downBlockTypes where t != .downEncoderBlock2D { throw fail("down block type '\(t.rawValue)' is not supported (DownEncoderBlock2D)") }
        for t in upBlockTypes where t != .upDecoderBlock2D { throw fail("up block type '\(t.rawValue)' is not supported (UpDecoderBlock2D)") }
        guard normNumGroups >= 1 else { throw fail("norm_num_groups must be positive, got \(normNumGroups)") }
        for ch in blockOutChannels where ch % normNumGroups != 0 {
            throw fail("block_out_channels \(ch) is not divisible by norm_num_groups \(normNumGroups)")
        }
        guard layersPerBlock >= 1, inChannels >= 1, outChannels >= 1, latentChannels >= 1 else {
            throw fail("layers_per_block, in_channels, out_channels and latent_channels must be positive")
        }
        guard scalingFactor > 0 else { throw fail("scaling_factor must be positive, got \(scalingFactor)") }
    }
}
