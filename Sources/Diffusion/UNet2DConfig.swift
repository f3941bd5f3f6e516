import Foundation

/// diffusers' `UNet2DModel` config (`config.json`), with diffusers' key names and defaults.
///
/// Supported: positional time embedding, "default" ResNet time conditioning, DownBlock2D,
/// AttnDownBlock2D, UpBlock2D, AttnUpBlock2D, UNetMidBlock2D (or none), conv down/up-sampling,
/// SiLU, class embedding through `num_class_embeds`. Anything else is rejected by `validate`
/// with the field named, rather than silently built differently.
public struct UNet2DConfig: Codable, Equatable {
    public var sampleSize: [Int]?
    public var inChannels = 3
    public var outChannels = 3
    public var centerInputSample = false
    public var timeEmbeddingType = "positional"
    public var timeEmbeddingDim: Int?
    public var freqShift = 0
    public var flipSinToCos = true
    public var downBlockTypes: [BlockType] = [.downBlock2D, .attnDownBlock2D, .attnDownBlock2D, .attnDownBlock2D]
    public var midBlockType: BlockType? = .midBlock2D
    public var upBlockTypes: [BlockType] = [.attnUpBlock2D, .attnUpBlock2D, .attnUpBlock2D, .upBlock2D]

    /// The block types this model builds.
    public static let supportedDownBlocks: [BlockType] = [.downBlock2D, .attnDownBlock2D]
    public static let supportedUpBlocks: [BlockType] = [.upBlock2D, .attnUpBlock2D]
    public var blockOutChannels = [224, 448, 672, 896]
    public var layersPerBlock = 2
    public var midBlockScaleFactor: Double = 1
    public var downsamplePadding = 1
    public var downsampleType = "conv"
    public var upsampleType = "conv"
    public var dropout: Double = 0
    public var actFn = "silu"
    public var attentionHeadDim: Int? = 8
    public var normNumGroups = 32
    public var attnNormNumGroups: Int?
    public var normEps: Double = 1e-5
    public var resnetTimeScaleShift = "default"
    public var addAttention = true
    public var classEmbedType: String?
    public var numClassEmbeds: Int?
    public var numTrainTimesteps: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case className = "_class_name", diffusersVersion = "_diffusers_version"
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case centerInputSample = "center_input_sample", timeEmbeddingType = "time_embedding_type"
        case timeEmbeddingDim = "time_embedding_dim", freqShift = "freq_shift", flipSinToCos = "flip_sin_to_cos"
        case downBlockTypes = "down_block_types", midBlockType = "mid_block_type", upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case midBlockScaleFactor = "mid_block_scale_factor", downsamplePadding = "downsample_padding"
        case downsampleType = "downsample_type", upsampleType = "upsample_type", dropout, actFn = "act_fn"
        case attentionHeadDim = "attention_head_dim", normNumGroups = "norm_num_groups"
        case attnNormNumGroups = "attn_norm_num_groups", normEps = "norm_eps"
        case resnetTimeScaleShift = "resnet_time_scale_shift", addAttention = "add_attention"
        case classEmbedType = "class_embed_type", numClassEmbeds = "num_class_embeds"
        case numTrainTimesteps = "num_train_timesteps"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let name = try c.decodeIfPresent(String.self, forKey: .className), name != "UNet2DModel" {
            throw DecodingError.dataCorruptedError(forKey: .className, in: c,
                                                   debugDescription: "_class_name is '\(name)', expected 'UNet2DModel'")
        }
        if let size = try? c.decodeIfPresent(Int.self, forKey: .sampleSize) { sampleSize = [size, size] }
        else { sampleSize = try c.decodeIfPresent([Int].self, forKey: .sampleSize) }
        func get<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try get(.inChannels, &inChannels); try get(.outChannels, &outChannels)
        try get(.centerInputSample, &centerInputSample); try get(.timeEmbeddingType, &timeEmbeddingType)
        timeEmbeddingDim = try c.decodeIfPresent(Int.self, forKey: .timeEmbeddingDim)
        try get(.freqShift, &freqShift); try get(.flipSinToCos, &flipSinToCos)
        func blocks(_ key: CodingKeys, _ what: String, _ supported: [BlockType]) throws -> [BlockType]? {
            try c.decodeIfPresent([String].self, forKey: key)?.map { name in
                switch BlockType.parse(name, what: what, supported: supported) {
                case .success(let t): return t
                case .failure(let e): throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: e.description)
                }
            }
        }
        downBlockTypes = try blocks(.downBlockTypes, "down block type", Self.supportedDownBlocks) ?? downBlockTypes
        upBlockTypes = try blocks(.upBlockTypes, "up block type", Self.supportedUpBlocks) ?? upBlockTypes
        if c.contains(.midBlockType) {
            midBlockType = try c.decodeIfPresent(String.self, forKey: .midBlockType).map { name in
                switch BlockType.parse(name, what: "mid_block_type", supported: [.midBlock2D]) {
                case .success(let t): return t
                case .failure(let e): throw DecodingError.dataCorruptedError(forKey: .midBlockType, in: c, debugDescription: e.description + " or null")
                }
            }
        }
        try get(.blockOutChannels, &blockOutChannels); try get(.layersPerBlock, &layersPerBlock)
        try get(.midBlockScaleFactor, &midBlockScaleFactor); try get(.downsamplePadding, &downsamplePadding)
        try get(.downsampleType, &downsampleType); try get(.upsampleType, &upsampleType)
        try get(.dropout, &dropout); try get(.actFn, &actFn)
        if c.contains(.attentionHeadDim) { attentionHeadDim = try c.decodeIfPresent(Int.self, forKey: .attentionHeadDim) }
        try get(.normNumGroups, &normNumGroups)
        attnNormNumGroups = try c.decodeIfPresent(Int.self, forKey: .attnNormNumGroups)
        try get(.normEps, &normEps); try get(.resnetTimeScaleShift, &resnetTimeScaleShift)
        try get(.addAttention, &addAttention)
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        numClassEmbeds = try c.decodeIfPresent(Int.self, forKey: .numClassEmbeds)
        numTrainTimesteps = try c.decodeIfPresent(Int.self, forKey: .numTrainTimesteps)
    }

    /// Writes every key, nulls included, as diffusers does.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("UNet2DModel", forKey: .className)
        try c.encode("0.42.1", forKey: .diffusersVersion)
        if let s = sampleSize, s.count == 2, s[0] == s[1] { try c.encode(s[0], forKey: .sampleSize) }
        else if let s = sampleSize { try c.encode(s, forKey: .sampleSize) } else { try c.encodeNil(forKey: .sampleSize) }
        try c.encode(inChannels, forKey: .inChannels); try c.encode(outChannels, forKey: .outChannels)
        try c.encode(centerInputSample, forKey: .centerInputSample); try c.encode(timeEmbeddingType, forKey: .timeEmbeddingType)
        try c.encode(timeEmbeddingDim, forKey: .timeEmbeddingDim)
        try c.encode(freqShift, forKey: .freqShift); try c.encode(flipSinToCos, forKey: .flipSinToCos)
        try c.encode(downBlockTypes, forKey: .downBlockTypes); try c.encode(midBlockType, forKey: .midBlockType)
        try c.encode(upBlockTypes, forKey: .upBlockTypes); try c.encode(blockOutChannels, forKey: .blockOutChannels)
        try c.encode(layersPerBlock, forKey: .layersPerBlock); try c.encode(midBlockScaleFactor, forKey: .midBlockScaleFactor)
        try c.encode(downsamplePadding, forKey: .downsamplePadding); try c.encode(downsampleType, forKey: .downsampleType)
        try c.encode(upsampleType, forKey: .upsampleType); try c.encode(dropout, forKey: .dropout)
        try c.encode(actFn, forKey: .actFn); try c.encode(attentionHeadDim, forKey: .attentionHeadDim)
        try c.encode(normNumGroups, forKey: .normNumGroups); try c.encode(attnNormNumGroups, forKey: .attnNormNumGroups)
        try c.encode(normEps, forKey: .normEps); try c.encode(resnetTimeScaleShift, forKey: .resnetTimeScaleShift)
        try c.encode(addAttention, forKey: .addAttention); try c.encode(classEmbedType, forKey: .classEmbedType)
        try c.encode(numClassEmbeds, forKey: .numClassEmbeds); try c.encode(numTrainTimesteps, forKey: .numTrainTimesteps)
    }

    /// The time embedding width (diffusers: `time_embedding_dim or block_out_channels[0] * 4`).
    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }

    /// Rejects what we do not build, naming the field and the file.
    public func validate(file: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, m) }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels must be positive, got \(blockOutChannels)") }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw fail("down_block_types (\(downBlockTypes.count)), up_block_types (\(upBlockTypes.count)) and block_out_channels (\(blockOutChannels.count)) must have equal lengths")
        }
        for t in downBlockTypes where !Self.supportedDownBlocks.contains(t) {
            throw fail("down block type '\(t.rawValue)' is not supported (DownBlock2D, AttnDownBlock2D)")
        }
        for t in upBlockTypes where !Self.supportedUpBlocks.contains(t) {
            throw fail("up block type '\(t.rawValue)' is not supported (UpBlock2D, AttnUpBlock2D)")
        }
        if let m = midBlockType, m != .midBlock2D { throw fail("mid_block_type '\(m.rawValue)' is not supported (UNetMidBlock2D or null)") }
        guard timeEmbeddingType == "positional" else { throw fail("time_embedding_type '\(timeEmbeddingType)' is not supported (positional)") }
        guard resnetTimeScaleShift == "default" else { throw fail("resnet_time_scale_shift '\(resnetTimeScaleShift)' is not supported (default)") }
        guard downsampleType == "conv", upsampleType == "conv" else { throw fail("downsample_type/upsample_type must be 'conv'") }
        guard actFn == "silu" else { throw fail("act_fn '\(actFn)' is not supported (silu)") }
        guard classEmbedType == nil else { throw fail("class_embed_type '\(classEmbedType!)' is not supported (null, with num_class_embeds)") }
        guard layersPerBlock >= 1, inChannels >= 1, outChannels >= 1 else { throw fail("layers_per_block, in_channels and out_channels must be positive") }
        guard normNumGroups >= 1 else { throw fail("norm_num_groups must be positive, got \(normNumGroups)") }
        for ch in blockOutChannels where ch % normNumGroups != 0 {
            throw fail("block_out_channels \(ch) is not divisible by norm_num_groups \(normNumGroups)")
        }
        if let g = attnNormNumGroups, g < 1 || blockOutChannels.contains(where: { $0 % g != 0 }) {
            throw fail("block_out_channels \(blockOutChannels) not divisible by attn_norm_num_groups \(g)")
        }
        if let h = attentionHeadDim {
            guard h > 0 else { throw fail("attention_head_dim must be positive, got \(h)") }
        }
        if let n = numClassEmbeds { guard n >= 1 else { throw fail("num_class_embeds must be positive, got \(n)") } }
    }

    public static func load(_ url: URL) throws -> UNet2DConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        return try parse(data, file: url.path)
    }

    /// Parses and validates a config.json's contents; errors name `file`.
    public static func parse(_ data: Data, file: String) throws -> UNet2DConfig {
        let config: UNet2DConfig
        do { config = try JSONDecoder().decode(UNet2DConfig.self, from: data) } catch DecodingError.dataCorrupted(let context) {
            throw ConfigError(file: file, "not a valid UNet2DModel config: \(context.debugDescription)")
        } catch {
            throw ConfigError(file: file, "not a valid UNet2DModel config: \(error)")
        }
        try config.validate(file: file)
        return config
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

extension UNet2DConfig {
    /// The architecture of the shipped Fashion-MNIST model (models/fashion-mnist): three levels of
    /// 32, 64 and 96 channels (28 -> 14 -> 7), one ResNet block per level, attention at 14x14 and
    /// 7x7 with head dimension 32, GroupNorm with 8 groups, and `classes + 1` class embeddings (the
    /// last is the null class). 1.86 M parameters, 0.52 GFLOP per 28x28 forward.
    public static func smallClassConditional(imageSize: Int, channels: Int, classes: Int) -> UNet2DConfig {
        var c = UNet2DConfig()
        c.sampleSize = [imageSize, imageSize]
        c.inChannels = channels
        c.outChannels = channels
        c.blockOutChannels = [32, 64, 96]
        c.layersPerBlock = 1
        c.downBlockTypes = [.downBlock2D, .attnDownBlock2D, .attnDownBlock2D]
        c.upBlockTypes = [.attnUpBlock2D, .attnUpBlock2D, .upBlock2D]
        c.normNumGroups = 8
        c.attentionHeadDim = 32
        c.numClassEmbeds = classes + 1
        return c
    }

    /// A two-level, 1-channel 8x8 class-conditional config with attention in the lower level
    /// (`classes` labels plus the null class): small enough for the tests and self-checks that
    /// run a whole model, and it still has every block kind the classifiers meet.
    public static func tiny(classes: Int, imageSize: Int = 8, channels: Int = 1) -> UNet2DConfig {
        var c = UNet2DConfig()
        c.sampleSize = [imageSize, imageSize]
        c.inChannels = channels
        c.outChannels = channels
        c.blockOutChannels = [8, 16]
        c.layersPerBlock = 1
        c.downBlockTypes = [.downBlock2D, .attnDownBlock2D]
        c.upBlockTypes = [.attnUpBlock2D, .upBlock2D]
        c.normNumGroups = 4
        c.attentionHeadDim = 8
        c.numClassEmbeds = classes + 1
        return c
    }
}
