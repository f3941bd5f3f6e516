import Diffusion
import Foundation

/// diffusers' `UNet2DConditionModel` config (`unet/config.json`), read with diffusers' key names
/// and defaults (diffusers 0.42).
///
/// Supported: positional time embedding, CrossAttnDownBlock2D / DownBlock2D,
/// UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D, `use_linear_projection` true (SD 2.x)
/// or false (SD 1.x), one transformer layer per block, `cross_attention_dim` and
/// `attention_head_dim` as a number or a per-block list. As in diffusers, `attention_head_dim` is
/// the number of HEADS of each block (`num_attention_heads` defaults to it; a list is per down
/// block and reversed for the up blocks), and a block's head width is its channels / heads.
/// `upcast_attention` is accepted and has no effect (we compute in Float32). `dropout` is not
/// applied. Rejected, with the field named: `only_cross_attention`, class / addition embeddings,
/// `encoder_hid_dim`, `time_cond_proj_dim`, other kernel sizes, scale-shift time conditioning,
/// `transformer_layers_per_block` other than 1, and any other non-default architectural field.
public struct UNet2DConditionConfig: Equatable, Sendable {
    /// Latent height and width (diffusers' `sample_size`, a number or [height, width]); not used
    /// by the forward.
    public var sampleSize: [Int]?
    public var inChannels = 4
    public var outChannels = 4
    public var centerInputSample = false
    public var flipSinToCos = true
    public var freqShift = 0
    public var downBlockTypes: [BlockType] = [.crossAttnDownBlock2D, .crossAttnDownBlock2D, .crossAttnDownBlock2D, .downBlock2D]
    public var midBlockType: BlockType = .midBlock2DCrossAttn
    public var upBlockTypes: [BlockType] = [.upBlock2D, .crossAttnUpBlock2D, .crossAttnUpBlock2D, .crossAttnUpBlock2D]

    /// The block types this model builds.
    public static let supportedDownBlocks: [BlockType] = [.crossAttnDownBlock2D, .downBlock2D]
    public static let supportedUpBlocks: [BlockType] = [.crossAttnUpBlock2D, .upBlock2D]
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var layersPerBlock = 2
    public var downsamplePadding = 1
    public var midBlockScaleFactor: Double = 1
    public var normNumGroups = 32
    public var normEps: Double = 1e-5
    /// Per down block (diffusers' `cross_attention_dim`, a number is used for every block).
    public var crossAttentionDim = [1280, 1280, 1280, 1280]
    /// Heads per down block (diffusers' `attention_head_dim`, see the type's doc).
    public var attentionHeads = [8, 8, 8, 8]
    public var useLinearProjection = false
    public var upcastAttention = false
    public var timeEmbeddingDim: Int?

    public init() {}

    /// Fields that must be absent or hold the given value (diffusers' default), else rejected.
    static let mustBeDefault: [(String, [JSONValue])] = [
        ("act_fn", [.string("silu")]), ("time_embedding_type", [.string("positional")]),
        ("resnet_time_scale_shift", [.string("default")]), ("conv_in_kernel", [.number(3)]),
        ("conv_out_kernel", [.number(3)]), ("num_attention_heads", [.null]), ("class_embed_type", [.null]),
        ("num_class_embeds", [.null]), ("addition_embed_type", [.null]), ("encoder_hid_dim", [.null]),
        ("encoder_hid_dim_type", [.null]), ("time_cond_proj_dim", [.null]), ("timestep_post_act", [.null]),
        ("time_embedding_act_fn", [.null]), ("dual_cross_attention", [.bool(false)]),
        ("mid_block_only_cross_attention", [.null, .bool(false)]), ("cross_attention_norm", [.null]),
        ("attention_type", [.string("default")]), ("class_embeddings_concat", [.bool(false)]),
        ("resnet_skip_time_act", [.bool(false)]), ("resnet_out_scale_factor", [.number(1)]),
        ("projection_class_embeddings_input_dim", [.null]), ("addition_time_embed_dim", [.null]),
        ("reverse_transformer_layers_per_block", [.null]), ("addition_embed_type_num_heads", [.number(64)]),
        ("num_train_timesteps", [.null]),
    ]

    /// Parses a config.json's contents; errors name `file` and the field.
    public static func parse(_ data: Data, file: String) throws -> UNet2DConditionConfig {
        let f = try ConfigFields(data, file: file)
        var c = UNet2DConditionConfig()
        try f.requireClassName("UNet2DConditionModel")
        for (key, allowed) in mustBeDefault {
            if let v = f.json[key], !allowed.contains(v) { throw f.fail("\(key) = \(v) is not supported (only \(allowed.map(\.description).joined(separator: " or ")))") }
        }
        if let s = f.value("sample_size") {
            guard let v = s.intsPerBlock(2), v.count == 2 else { throw f.fail("sample_size must be an integer or [height, width], got \(s)") }
            c.sampleSize = v
        }
        try f.int("in_channels", &c.inChannels); try f.int("out_channels", &c.outChannels)
        try f.bool("center_input_sample", &c.centerInputSample); try f.bool("flip_sin_to_cos", &c.flipSinToCos)
        try f.int("freq_shift", &c.freqShift)
        try f.blockTypes("down_block_types", &c.downBlockTypes, what: "down block type", supported: supportedDownBlocks)
        try f.blockTypes("up_block_types", &c.upBlockTypes, what: "up block type", supported: supportedUpBlocks)
        if let m = f.json["mid_block_type"] {
            guard m == .string("UNetMidBlock2DCrossAttn") else { throw f.fail("mid_block_type \(m) is not supported (UNetMidBlock2DCrossAttn)") }
        }
        if let j = f.value("block_out_channels") {
            guard let v = j.intsPerBlock(1), case .array = j else { throw f.fail("block_out_channels must be a list of integers, got \(j)") }
            c.blockOutChannels = v
        }
        let blocks = c.blockOutChannels.count
        if let j = f.value("layers_per_block") {
            guard let n = j.integer else { throw f.fail("layers_per_block \(j) is not supported (one integer for every block)") }
            c.layersPerBlock = n
        }
        try f.int("downsample_padding", &c.downsamplePadding); try f.double("mid_block_scale_factor", &c.midBlockScaleFactor)
        try f.int("norm_num_groups", &c.normNumGroups); try f.double("norm_eps", &c.normEps)
        c.crossAttentionDim = Array(repeating: 1280, count: blocks)
        if let j = f.value("cross_attention_dim") {
            guard let v = j.intsPerBlock(blocks), v.count == blocks else { throw f.fail("cross_attention_dim must be an integer or \(blocks) integers, got \(j)") }
            c.crossAttentionDim = v
        }
        c.attentionHeads = Array(repeating: 8, count: blocks)
        if let j = f.value("attention_head_dim") {
            guard let v = j.intsPerBlock(blocks), v.count == blocks else { throw f.fail("attention_head_dim must be an integer or \(blocks) integers, got \(j)") }
            c.attentionHeads = v
        }
        if let j = f.value("transformer_layers_per_block") {
            guard let v = j.intsPerBlock(blocks), v.allSatisfy({ $0 == 1 }) else { throw f.fail("transformer_layers_per_block \(j) is not supported (1)") }
        }
        if let j = f.value("only_cross_attention") {
            guard let v = j.bools, !v.contains(true) else { throw f.fail("only_cross_attention \(j) is not supported (false)") }
        }
        try f.bool("use_linear_projection", &c.useLinearProjection); try f.bool("upcast_attention", &c.upcastAttention)
        if let j = f.value("time_embedding_dim") {
            guard let n = j.integer else { throw f.fail("time_embedding_dim must be an integer, got \(j)") }
            c.timeEmbeddingDim = n
        }
        try c.validate(file: file)
        return c
    }

    /// Reads and checks `url` (a config.json).
    public static func load(_ url: URL) throws -> UNet2DConditionConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        return try parse(data, file: url.path)
    }

    /// The time embedding width (diffusers: `time_embedding_dim or block_out_channels[0] * 4`).
    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }

    /// Checks the shapes fit together; errors name the field.
    public func validate(file: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, m) }
        let n = blockOutChannels.count
        guard n >= 1, blockOutChannels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels must be positive, got \(blockOutChannels)") }
        guard downBlockTypes.count == n, upBlockTypes.count == n else {
            throw fail("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(n)) must have equal lengths")
        }
        for t in downBlockTypes where !Self.supportedDownBlocks.contains(t) {
            throw fail("down block type '\(t.rawValue)' is not supported (CrossAttnDownBlock2D, DownBlock2D)")
        }
        for t in upBlockTypes where !Self.supportedUpBlocks.contains(t) {
            throw fail("up block type '\(t.rawValue)' is not supported (CrossAttnUpBlock2D, UpBlock2D)")
        }
        guard crossAttentionDim.count == n, attentionHeads.count == n else { throw fail("cross_attention_dim and attention_head_dim need \(n) entries") }
        guard layersPerBlock >= 1, inChannels >= 1, outChannels >= 1 else { throw fail("layers_per_block, in_channels and out_channels must be positive") }
        guard normNumGroups >= 1 else { throw fail("norm_num_groups must be positive, got \(normNumGroups)") }
        for ch in blockOutChannels where ch % normNumGroups != 0 {
            throw fail("block_out_channels \(ch) is not divisible by norm_num_groups \(normNumGroups)")
        }
        for i in 0..<n {
            guard attentionHeads[i] > 0, blockOutChannels[i] % attentionHeads[i] == 0 else {
                throw fail("block_out_channels \(blockOutChannels[i]) does not split into attention_head_dim (heads) \(attentionHeads[i])")
            }
            guard crossAttentionDim[i] > 0 else { throw fail("cross_attention_dim must be positive") }
        }
    }
}
