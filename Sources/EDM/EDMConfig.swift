import Foundation
import Diffusion

/// `config.json` of an EDM model folder: the keyword arguments of EDM's preconditioning class
/// (`EDMPrecond`, `VPPrecond`, `VEPrecond`: `img_resolution`, `img_channels`, `label_dim`,
/// `use_fp16`, its own constants, `model_type`) and of its network (`SongUNet`, `DhariwalUNet`),
/// with EDM's names, plus `"precond": "edm" | "vp" | "ve"` naming the class.
///
/// Reading is as strict as EDM's constructors: a key the chosen classes do not take (say
/// `embedding_type` with `"model_type": "DhariwalUNet"`, or `beta_d` with `"precond": "edm"`) or an
/// unknown key is an error naming it, as Python would raise a TypeError; a missing key takes
/// EDM's default for that class. `sigma_max` may be `"inf"` (EDMPrecond's default; JSON has no
/// infinity). For "vp", `sigma_min` and `sigma_max` are derived (sigma(epsilon_t), sigma(1)); they
/// are written for information and, when read, must agree with the derived values.
/// `use_fp16` is kept but computation is always float32 (EDM also runs float32 off CUDA).
public struct EDMConfig: Equatable, Sendable {
    public enum Precond: String, Codable, Sendable, CaseIterable { case edm, vp, ve }
    public enum ModelType: String, Codable, Sendable, CaseIterable {
        case songUNet = "SongUNet", dhariwalUNet = "DhariwalUNet"
    }

    public var precond: Precond
    public var modelType: ModelType
    public var imgResolution: Int
    public var imgChannels: Int
    public var labelDim = 0
    public var useFp16 = false
    public var augmentDim = 0

    /// "edm" and "ve" (for "vp" see `preconditioning`).
    public var sigmaMin: Double? = nil
    public var sigmaMax: Double? = nil
    /// "edm" only.
    public var sigmaData: Double? = nil
    /// "vp" only.
    public var betaD: Double? = nil
    public var betaMin: Double? = nil
    public var M: Int? = nil
    public var epsilonT: Double? = nil

    // Both networks.
    public var modelChannels: Int
    public var channelMult: [Int]
    public var channelMultEmb = 4
    public var numBlocks: Int
    public var attnResolutions: [Int]
    public var dropout: Double
    public var labelDropout = 0.0
    // SongUNet only (nil for DhariwalUNet).
    public var embeddingType: String? = nil
    public var channelMultNoise: Int? = nil
    public var encoderType: String? = nil
    public var decoderType: String? = nil
    public var resampleFilter: [Double]? = nil

    /// EDM's defaults for the chosen classes.
    public init(precond: Precond, modelType: ModelType, imgResolution: Int, imgChannels: Int, labelDim: Int = 0) {
        self.precond = precond
        self.modelType = modelType
        self.imgResolution = imgResolution
        self.imgChannels = imgChannels
        self.labelDim = labelDim
        switch precond {
        case .edm: sigmaMin = 0; sigmaMax = .infinity; sigmaData = 0.5
        case .ve: sigmaMin = 0.02; sigmaMax = 100
        case .vp: betaD = 19.9; betaMin = 0.1; M = 1000; epsilonT = 1e-5
        }
        switch modelType {
        case .songUNet:
            let o = SongUNetOptions()
            modelChannels = o.modelChannels; channelMult = o.channelMult; channelMultEmb = o.channelMultEmb
            numBlocks = o.numBlocks; attnResolutions = o.attnResolutions; dropout = o.dropout; labelDropout = o.labelDropout
            embeddingType = o.embeddingType; channelMultNoise = o.channelMultNoise; encoderType = o.encoderType
            decoderType = o.decoderType; resampleFilter = o.resampleFilter.map { Double($0) }
        case .dhariwalUNet:
            let o = DhariwalUNetOptions()
            modelChannels = o.modelChannels; channelMult = o.channelMult; channelMultEmb = o.channelMultEmb
            numBlocks = o.numBlocks; attnResolutions = o.attnResolutions; dropout = o.dropout; labelDropout = o.labelDropout
        }
    }

    /// The preconditioning with its constants.
    public var preconditioning: Preconditioning {
        switch precond {
        case .edm: return .edm(EDMPrecond(sigmaMin: sigmaMin ?? 0, sigmaMax: sigmaMax ?? .infinity, sigmaData: sigmaData ?? 0.5))
        case .vp: return .vp(VPPrecond(betaD: betaD ?? 19.9, betaMin: betaMin ?? 0.1, M: M ?? 1000, epsilonT: epsilonT ?? 1e-5))
        case .ve: return .ve(VEPrecond(sigmaMin: sigmaMin ?? 0.02, sigmaMax: sigmaMax ?? 100))
        }
    }

    /// The SongUNet keyword arguments (meaningful when `modelType` is SongUNet).
    public var songOptions: SongUNetOptions {
        var o = SongUNetOptions()
        o.modelChannels = modelChannels; o.channelMult = channelMult; o.channelMultEmb = channelMultEmb
        o.numBlocks = numBlocks; o.attnResolutions = attnResolutions; o.dropout = dropout; o.labelDropout = labelDropout
        if let v = embeddingType { o.embeddingType = v }
        if let v = channelMultNoise { o.channelMultNoise = v }
        if let v = encoderType { o.encoderType = v }
        if let v = decoderType { o.decoderType = v }
        if let v = resampleFilter { o.resampleFilter = v.map { Float($0) } }
        return o
    }

    /// The DhariwalUNet keyword arguments (meaningful when `modelType` is DhariwalUNet).
    public var dhariwalOptions: DhariwalUNetOptions {
        var o = DhariwalUNetOptions()
        o.modelChannels = modelChannels; o.channelMult = channelMult; o.channelMultEmb = channelMultEmb
        o.numBlocks = numBlocks; o.attnResolutions = attnResolutions; o.dropout = dropout; o.labelDropout = labelDropout
        return o
    }

    /// Rejects values EDM's classes would not build (or would build into something that fails),
    /// naming the field and `file`.
    public func validate(file: String) throws {
        func fail(_ field: String, _ m: String) -> ConfigError { ConfigError(file: file, "\(field): \(m)") }
        guard imgResolution >= 1 else { throw fail("img_resolution", "must be positive, got \(imgResolution)") }
        guard imgChannels >= 1 else { throw fail("img_channels", "must be positive, got \(imgChannels)") }
        guard labelDim >= 0 else { throw fail("label_dim", "must be >= 0, got \(labelDim)") }
        guard augmentDim >= 0 else { throw fail("augment_dim", "must be >= 0, got \(augmentDim)") }
        switch preconditioning {
        case .edm(let p):
            guard p.sigmaData > 0, p.sigmaData.isFinite else { throw fail("sigma_data", "must be positive, got \(p.sigmaData)") }
            guard p.sigmaMin >= 0, p.sigmaMin <= p.sigmaMax else { throw fail("sigma_min", "must be in [0, sigma_max], got \(p.sigmaMin) (sigma_max \(p.sigmaMax))") }
        case .ve(let p):
            guard p.sigmaMin > 0, p.sigmaMin <= p.sigmaMax, p.sigmaMax.isFinite else {
                throw fail("sigma_min", "must be in (0, sigma_max] with sigma_max finite, got \(p.sigmaMin), \(p.sigmaMax)")
            }
        case .vp(let p):
            guard p.betaD > 0, p.betaD.isFinite else { throw fail("beta_d", "must be positive, got \(p.betaD)") }
            guard p.betaMin >= 0, p.betaMin.isFinite else { throw fail("beta_min", "must be >= 0, got \(p.betaMin)") }
            guard p.M >= 2 else { throw fail("M", "must be at least 2, got \(p.M)") }
            guard p.epsilonT > 0, p.epsilonT <= 1 else { throw fail("epsilon_t", "must be in (0, 1], got \(p.epsilonT)") }
        }
        let problem: (field: String, message: String)?
        switch modelType {
        case .songUNet: problem = SongUNet.validate(songOptions, imgResolution: imgResolution, inChannels: imgChannels)
        case .dhariwalUNet: problem = DhariwalUNet.validate(dhariwalOptions, imgResolution: imgResolution, inChannels: imgChannels)
        }
        if let problem { throw fail(problem.field, problem.message) }
    }

    /// Reads, decodes and validates `url`; every error names the file (and the field).
    public static func load(_ url: URL) throws -> EDMConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        let config: EDMConfig
        do { config = try JSONDecoder().decode(EDMConfig.self, from: data) } catch let e as EDMConfigFieldError {
            throw ConfigError(file: url.path, "\(e.field): \(e.message)")
        } catch {
            throw ConfigError(file: url.path, "not a valid EDM config: \(error)")
        }
        try config.validate(file: url.path)
        return config
    }

    /// Writes every key the chosen classes take (sorted, indented).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

/// A field of config.json that is missing, mistyped, unknown or not taken by the chosen classes.
public struct EDMConfigFieldError: Error, CustomStringConvertible {
    public let field: String, message: String
    public var description: String { "\(field): \(message)" }
}

extension EDMConfig: Codable {
    struct Key: CodingKey {
        let stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    static let commonKeys: Set<String> = [
        "precond", "model_type", "img_resolution", "img_channels", "label_dim", "use_fp16", "augment_dim",
        "model_channels", "channel_mult", "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout",
    ]
    static let songKeys: Set<String> = ["embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter"]
    static func precondKeys(_ p: Precond) -> Set<String> {
        switch p {
        case .edm: return ["sigma_min", "sigma_max", "sigma_data"]
        case .ve: return ["sigma_min", "sigma_max"]
        case .vp: return ["beta_d", "beta_min", "M", "epsilon_t", "sigma_min", "sigma_max"]
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        func get<T: Decodable>(_ name: String, _ type: T.Type) throws -> T? {
            let k = Key(name)
            guard c.contains(k) else { return nil }
            do { return try c.decode(T.self, forKey: k) } catch {
                throw EDMConfigFieldError(field: name, message: "expected \(Self.typeName(T.self))")
            }
        }
        func enumValue<E: RawRepresentable & CaseIterable>(_ name: String, _ type: E.Type) throws -> E? where E.RawValue == String {
            guard let raw = try get(name, String.self) else { return nil }
            guard let v = E(rawValue: raw) else {
                throw EDMConfigFieldError(field: name, message: "'\(raw)' is not one of \(E.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", "))")
            }
            return v
        }
        // sigma_max may be a number or "inf".
        func sigma(_ name: String) throws -> Double? {
            let k = Key(name)
            guard c.contains(k) else { return nil }
            if let v = try? c.decode(Double.self, forKey: k) { return v }
            if let s = try? c.decode(String.self, forKey: k), ["inf", "infinity", "+inf"].contains(s.lowercased()) { return .infinity }
            throw EDMConfigFieldError(field: name, message: "expected a number or \"inf\"")
        }

        guard let precond = try enumValue("precond", Precond.self) else {
            throw EDMConfigFieldError(field: "precond", message: "missing (\"edm\", \"vp\" or \"ve\")")
        }
        // EDM's defaults: EDMPrecond builds a DhariwalUNet, VPPrecond and VEPrecond a SongUNet.
        let modelType = try enumValue("model_type", ModelType.self) ?? (precond == .edm ? .dhariwalUNet : .songUNet)
        guard let res = try get("img_resolution", Int.self) else { throw EDMConfigFieldError(field: "img_resolution", message: "missing") }
        guard let channels = try get("img_channels", Int.self) else { throw EDMConfigFieldError(field: "img_channels", message: "missing") }

        var allowed = Self.commonKeys.union(Self.precondKeys(precond))
        if modelType == .songUNet { allowed.formUnion(Self.songKeys) }
        for key in c.allKeys.map(\.stringValue).sorted() where !allowed.contains(key) {
            let known = Self.commonKeys.union(Self.songKeys).union(Precond.allCases.reduce(into: Set<String>()) { $0.formUnion(Self.precondKeys($1)) })
            if known.contains(key) {
                throw EDMConfigFieldError(field: key, message: "not an option of \(modelType.rawValue) with precond '\(precond.rawValue)'")
            }
            throw EDMConfigFieldError(field: key, message: "unknown key")
        }

        self.init(precond: precond, modelType: modelType, imgResolution: res, imgChannels: channels,
                  labelDim: try get("label_dim", Int.self) ?? 0)
        if let v = try get("use_fp16", Bool.self) { useFp16 = v }
        if let v = try get("augment_dim", Int.self) { augmentDim = v }
        switch precond {
        case .edm, .ve:
            if let v = try sigma("sigma_min") { sigmaMin = v }
            if let v = try sigma("sigma_max") { sigmaMax = v }
            if let v = try get("sigma_data", Double.self) { sigmaData = v }
        case .vp:
            if let v = try get("beta_d", Double.self) { betaD = v }
            if let v = try get("beta_min", Double.self) { betaMin = v }
            if let v = try get("M", Int.self) { M = v }
            if let v = try get("epsilon_t", Double.self) { epsilonT = v }
            let p = VPPrecond(betaD: betaD!, betaMin: betaMin!, M: M!, epsilonT: epsilonT!)
            for (name, derived) in [("sigma_min", p.sigmaMin), ("sigma_max", p.sigmaMax)] {
                if let given = try sigma(name), !(Swift.abs(given - derived) <= 1e-5 * Swift.abs(derived)) {
                    throw EDMConfigFieldError(field: name, message: "\(given) disagrees with \(derived), which beta_d, beta_min and epsilon_t give (VPPrecond derives it)")
                }
            }
        }
        if let v = try get("model_channels", Int.self) { modelChannels = v }
        if let v = try get("channel_mult", [Int].self) { channelMult = v }
        if let v = try get("channel_mult_emb", Int.self) { channelMultEmb = v }
        if let v = try get("num_blocks", Int.self) { numBlocks = v }
        if let v = try get("attn_resolutions", [Int].self) { attnResolutions = v }
        if let v = try get("dropout", Double.self) { dropout = v }
        if let v = try get("label_dropout", Double.self) { labelDropout = v }
        if modelType == .songUNet {
            if let v = try get("embedding_type", String.self) { embeddingType = v }
            if let v = try get("channel_mult_noise", Int.self) { channelMultNoise = v }
            if let v = try get("encoder_type", String.self) { encoderType = v }
            if let v = try get("decoder_type", String.self) { decoderType = v }
            if let v = try get("resample_filter", [Double].self) { resampleFilter = v }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        func put<T: Encodable>(_ name: String, _ v: T) throws { try c.encode(v, forKey: Key(name)) }
        func putSigma(_ name: String, _ v: Double) throws {
            if v.isInfinite { try put(name, v > 0 ? "inf" : "-inf") } else { try put(name, v) }
        }
        try put("precond", precond.rawValue)
        try put("model_type", modelType.rawValue)
        try put("img_resolution", imgResolution)
        try put("img_channels", imgChannels)
        try put("label_dim", labelDim)
        try put("use_fp16", useFp16)
        try put("augment_dim", augmentDim)
        switch preconditioning {
        case .edm(let p):
            try putSigma("sigma_min", p.sigmaMin); try putSigma("sigma_max", p.sigmaMax); try put("sigma_data", p.sigmaData)
        case .ve(let p):
            try putSigma("sigma_min", p.sigmaMin); try putSigma("sigma_max", p.sigmaMax)
        case .vp(let p):
            try put("beta_d", p.betaD); try put("beta_min", p.betaMin); try put("M", p.M); try put("epsilon_t", p.epsilonT)
            try put("sigma_min", p.sigmaMin); try put("sigma_max", p.sigmaMax)
        }
        try put("model_channels", modelChannels)
        try put("channel_mult", channelMult)
        try put("channel_mult_emb", channelMultEmb)
        try put("num_blocks", numBlocks)
        try put("attn_resolutions", attnResolutions)
        try put("dropout", dropout)
        try put("label_dropout", labelDropout)
        if modelType == .songUNet {
            let o = songOptions
            try put("embedding_type", o.embeddingType)
            try put("channel_mult_noise", o.channelMultNoise)
            try put("encoder_type", o.encoderType)
            try put("decoder_type", o.decoderType)
            try put("resample_filter", resampleFilter ?? o.resampleFilter.map { Double($0) })
        }
    }

    static func typeName<T>(_ t: T.Type) -> String {
        switch t {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case is [Int].Type: return "a list of integers"
        case is [Double].Type: return "a list of numbers"
        default: return "\(t)"
        }
    }
}

extension EDMConfig {
    /// EDM's CIFAR-10 (32x32, RGB) training configurations, `python train.py --cond=0|1
    /// --arch=ddpmpp|ncsnpp --precond=edm|vp|ve` with the defaults of EDM's train.py (dropout 0.13,
    /// augment 0.12, hence augment_dim 9): DDPM++ (positional, standard/standard, [1,1]) or NCSN++
    /// (fourier, channel_mult_noise 2, residual encoder, [1,3,3,1]), model_channels 128,
    /// channel_mult [2,2,2], num_blocks 4, attention at 16. RDC's `edm_cifar_cond.pt` is
    /// `cifar10(conditional: true, architecture: .ddpmpp)`.
    public enum CIFAR10Architecture: String, Sendable { case ddpmpp, ncsnpp }

    public static func cifar10(conditional: Bool, architecture: CIFAR10Architecture, precond: Precond = .edm) -> EDMConfig {
        var c = EDMConfig(precond: precond, modelType: .songUNet, imgResolution: 32, imgChannels: 3, labelDim: conditional ? 10 : 0)
        c.augmentDim = 9
        c.dropout = 0.13
        c.modelChannels = 128
        c.channelMult = [2, 2, 2]
        switch architecture {
        case .ddpmpp:
            c.embeddingType = "positional"; c.encoderType = "standard"; c.decoderType = "standard"
            c.channelMultNoise = 1; c.resampleFilter = [1, 1]
        case .ncsnpp:
            c.embeddingType = "fourier"; c.encoderType = "residual"; c.decoderType = "standard"
            c.channelMultNoise = 2; c.resampleFilter = [1, 3, 3, 1]
        }
        return c
    }
}
