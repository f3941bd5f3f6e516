import Diffusion
import Foundation

/// diffusers' `DiTTransformer2DModel` config (`transformer/config.json`), with diffusers' key names
/// and defaults (diffusers 0.42; the defaults are DiT-XL/2: 28 layers, 16 heads of 72, patch 2,
/// 32x32x4 latents, 1,000 classes).
///
/// Also read: configs written as `Transformer2DModel` with `norm_type` "ada_norm_zero" (the
/// published DiT checkpoints predate the DiT class, and diffusers remaps them to it). Their extra
/// keys must hold what a DiT has (`cross_attention_dim` null, `num_vector_embeds` null,
/// `only_cross_attention` / `double_self_attention` false, `attention_type` "default",
/// `caption_channels` null, `interpolation_scale` null or 1, `use_additional_conditions` null or
/// false), else they are rejected with the field named; `use_linear_projection` and
/// `norm_num_groups` are not used by a DiT and have no effect, as in diffusers.
///
/// Supported: `norm_type` "ada_norm_zero" (the only one diffusers' DiT implements),
/// `activation_fn` "gelu-approximate" (tanh) or "gelu" (erf), with or without `attention_bias`
/// and `norm_elementwise_affine`. `dropout` and `upcast_attention` are read and have no effect
/// (no dropout at inference; we compute in Float32).
public struct DiTTransformer2DConfig: Codable, Equatable, Sendable {
    public var numAttentionHeads = 16
    public var attentionHeadDim = 72
    public var inChannels = 4
    /// nil: `in_channels` (diffusers' default).
    public var outChannels: Int?
    public var numLayers = 28
    public var dropout: Double = 0
    public var normNumGroups = 32
    public var attentionBias = true
    /// Latent height and width; the positional table is built for this size.
    public var sampleSize = 32
    public var patchSize = 2
    public var activationFn = "gelu-approximate"
    /// Class count (the label table has one more row: the null class).
    public var numEmbedsAdaNorm: Int? = 1000
    public var upcastAttention = false
    public var normType = "ada_norm_zero"
    public var normElementwiseAffine = false
    public var normEps: Double = 1e-5

    public static let className = "DiTTransformer2DModel"
    /// The class name older DiT folders carry (diffusers maps it to `DiTTransformer2DModel`).
    public static let legacyClassName = "Transformer2DModel"

    enum CodingKeys: String, CodingKey, CaseIterable {
        case className = "_class_name", diffusersVersion = "_diffusers_version"
        case numAttentionHeads = "num_attention_heads", attentionHeadDim = "attention_head_dim"
        case inChannels = "in_channels", outChannels = "out_channels", numLayers = "num_layers", dropout
        case normNumGroups = "norm_num_groups", attentionBias = "attention_bias", sampleSize = "sample_size"
        case patchSize = "patch_size", activationFn = "activation_fn", numEmbedsAdaNorm = "num_embeds_ada_norm"
        case upcastAttention = "upcast_attention", normType = "norm_type"
        case normElementwiseAffine = "norm_elementwise_affine", normEps = "norm_eps"
        // Transformer2DModel's keys: checked, never written.
        case crossAttentionDim = "cross_attention_dim", numVectorEmbeds = "num_vector_embeds"
        case onlyCrossAttention = "only_cross_attention", doubleSelfAttention = "double_self_attention"
        case attentionType = "attention_type", captionChannels = "caption_channels"
        case interpolationScale = "interpolation_scale", useAdditionalConditions = "use_additional_conditions"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        /// Reads `key` when present and not null; a wrong type names the key.
        func read<T: Decodable>(_ key: CodingKeys, _ kind: String) throws -> T? {
            do { return try c.decodeIfPresent(T.self, forKey: key) } catch {
                throw DiTConfigFieldError(message: "\(key.rawValue) must be \(kind)")
            }
        }
        func get<T: Decodable>(_ key: CodingKeys, _ kind: String, _ value: inout T) throws {
            if let v: T = try read(key, kind) { value = v }
        }
        if let name: String = try read(.className, "a string"), name != Self.className, name != Self.legacyClassName {
            throw DiTConfigFieldError(message: "_class_name is '\(name)', expected '\(Self.className)' (or '\(Self.legacyClassName)' with norm_type ada_norm_zero)")
        }
        try get(.numAttentionHeads, "an integer", &numAttentionHeads)
        try get(.attentionHeadDim, "an integer", &attentionHeadDim)
        try get(.inChannels, "an integer", &inChannels)
        outChannels = try read(.outChannels, "an integer or null")
        try get(.numLayers, "an integer", &numLayers)
        try get(.dropout, "a number", &dropout)
        try get(.normNumGroups, "an integer", &normNumGroups)
        try get(.attentionBias, "true or false", &attentionBias)
        try get(.sampleSize, "an integer", &sampleSize)
        try get(.patchSize, "an integer", &patchSize)
        try get(.activationFn, "a string", &activationFn)
        // Present and null means "no class embedding", which a DiT cannot have (validate rejects it).
        if c.contains(.numEmbedsAdaNorm) { numEmbedsAdaNorm = try read(.numEmbedsAdaNorm, "an integer or null") }
        try get(.upcastAttention, "true or false", &upcastAttention)
        try get(.normType, "a string", &normType)
        try get(.normElementwiseAffine, "true or false", &normElementwiseAffine)
        try get(.normEps, "a number", &normEps)

        // Transformer2DModel-only keys: a DiT is what they describe only at these values.
        func mustBeNull(_ key: CodingKeys) throws {
            if (try? c.decodeNil(forKey: key)) ?? true { return }  // absent or null
            throw DiTConfigFieldError(message: "\(key.rawValue) is set, which a DiT does not have (null)")
        }
        try mustBeNull(.crossAttentionDim)
        try mustBeNull(.numVectorEmbeds)
        try mustBeNull(.captionChannels)
        for key in [CodingKeys.onlyCrossAttention, .doubleSelfAttention, .useAdditionalConditions] {
            if let v: Bool = try read(key, "true, false or null"), v { throw DiTConfigFieldError(message: "\(key.rawValue) = true is not supported (false)") }
        }
        if let v: String = try read(.attentionType, "a string"), v != "default" {
            throw DiTConfigFieldError(message: "attention_type '\(v)' is not supported (default)")
        }
        if let v: Double = try read(.interpolationScale, "a number or null"), v != 1 {
            throw DiTConfigFieldError(message: "interpolation_scale = \(v) is not supported (null or 1: diffusers' DiT always uses 1)")
        }
    }

    /// Writes every key diffusers' `DiTTransformer2DModel.save_pretrained` writes.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.className, forKey: .className)
        try c.encode("0.42.1", forKey: .diffusersVersion)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(attentionHeadDim, forKey: .attentionHeadDim)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(outChannels, forKey: .outChannels)
        try c.encode(numLayers, forKey: .numLayers)
        try c.encode(dropout, forKey: .dropout)
        try c.encode(normNumGroups, forKey: .normNumGroups)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(sampleSize, forKey: .sampleSize)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(activationFn, forKey: .activationFn)
        try c.encode(numEmbedsAdaNorm, forKey: .numEmbedsAdaNorm)
        try c.encode(upcastAttention, forKey: .upcastAttention)
        try c.encode(normType, forKey: .normType)
        try c.encode(normElementwiseAffine, forKey: .normElementwiseAffine)
        try c.encode(normEps, forKey: .normEps)
    }

    /// Transformer width: heads x head dim (diffusers' `inner_dim`).
    public var innerDim: Int { numAttentionHeads * attentionHeadDim }

    /// Output channels (diffusers: `in_channels if out_channels is None else out_channels`).
    public var outputChannels: Int { outChannels ?? inChannels }

    /// Whether the output carries a variance half after the noise prediction (DiT's learned
    /// sigma: out_channels = 2 x in_channels).
    public var learnsSigma: Bool { outputChannels == 2 * inChannels }

    /// Number of real classes (ids 0..<classCount); id `classCount` is the null class.
    public var classCount: Int { numEmbedsAdaNorm ?? 0 }

    /// Tokens per side at the config's sample size.
    public var gridSize: Int { sampleSize / patchSize }

    /// Rejects what we do not build, naming the field and the file.
    public func validate(file: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(file: file, m) }
        guard normType == "ada_norm_zero" else {
            throw fail("norm_type '\(normType)' is not supported (ada_norm_zero, the only one diffusers' DiT implements)")
        }
        guard let classes = numEmbedsAdaNorm else { throw fail("num_embeds_ada_norm is null; ada_norm_zero needs the number of classes") }
        guard classes >= 1 else { throw fail("num_embeds_ada_norm must be positive, got \(classes)") }
        guard ["gelu-approximate", "gelu"].contains(activationFn) else {
            throw fail("activation_fn '\(activationFn)' is not supported (gelu-approximate, gelu)")
        }
        guard numAttentionHeads >= 1 else { throw fail("num_attention_heads must be positive, got \(numAttentionHeads)") }
        guard attentionHeadDim >= 1 else { throw fail("attention_head_dim must be positive, got \(attentionHeadDim)") }
        guard !numAttentionHeads.multipliedReportingOverflow(by: attentionHeadDim).overflow else {
            throw fail("num_attention_heads x attention_head_dim = \(numAttentionHeads) x \(attentionHeadDim) does not fit in an integer")
        }
        guard innerDim % 4 == 0 else {
            throw fail("num_attention_heads x attention_head_dim = \(innerDim) must be divisible by 4 (the 2-D sinusoidal positions use a quarter each for sin and cos of rows and columns)")
        }
        guard numLayers >= 1 else { throw fail("num_layers must be positive, got \(numLayers)") }
        guard inChannels >= 1 else { throw fail("in_channels must be positive, got \(inChannels)") }
        if let o = outChannels { guard o >= 1 else { throw fail("out_channels must be positive or null, got \(o)") } }
        guard patchSize >= 1 else { throw fail("patch_size must be positive, got \(patchSize)") }
        guard sampleSize >= patchSize, sampleSize % patchSize == 0 else {
            throw fail("sample_size \(sampleSize) must be a positive multiple of patch_size \(patchSize)")
        }
        guard dropout >= 0, dropout < 1 else { throw fail("dropout must lie in [0, 1), got \(dropout)") }
        guard normEps > 0 else { throw fail("norm_eps must be positive, got \(normEps)") }
    }

    /// Parses and validates a config.json's contents; errors name `file` and the field.
    public static func parse(_ data: Data, file: String) throws -> DiTTransformer2DConfig {
        let config: DiTTransformer2DConfig
        do { config = try JSONDecoder().decode(DiTTransformer2DConfig.self, from: data) } catch let e as DiTConfigFieldError {
            throw ConfigError(file: file, e.message)
        } catch {
            throw ConfigError(file: file, "not a valid \(className) config (a JSON object): \(error)")
        }
        try config.validate(file: file)
        return config
    }

    /// Reads and checks `url` (a config.json).
    public static func load(_ url: URL) throws -> DiTTransformer2DConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        return try parse(data, file: url.path)
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// Number of parameters of the network this config builds, from the shapes alone (checked
    /// against built models and diffusers' count for DiT-XL/2).
    public var parameterCount: Int {
        let d = innerDim, p = patchSize, ffInner = 4 * d
        let linear = { (i: Int, o: Int, bias: Bool) in i * o + (bias ? o : 0) }
        let patch = inChannels * d * p * p + d
        let embedding = linear(256, d, true) + linear(d, d, true) + (classCount + 1) * d
        let adaNorm = embedding + linear(d, 6 * d, true)
        let attention = 3 * linear(d, d, attentionBias) + linear(d, d, true)
        let norm3 = normElementwiseAffine ? 2 * d : 0
        let feedForward = linear(d, ffInner, true) + linear(ffInner, d, true)
        let block = adaNorm + attention + norm3 + feedForward
        let final = linear(d, 2 * d, true) + linear(d, p * p * outputChannels, true)
        return patch + numLayers * block + final
    }
}

/// A config field of the wrong type or value, found while decoding (the file is added by `parse`).
struct DiTConfigFieldError: Error {
    let message: String
}
