import Diffusion
import Foundation

/// The fields of transformers' `CLIPTextConfig` (`text_encoder/config.json`) that the text model
/// uses, with transformers' defaults. `hidden_act`: quick_gelu, gelu (erf) or gelu_new /
/// gelu_pytorch_tanh (tanh approximation); anything else is rejected naming the file.
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int = 49408
    public var hiddenSize: Int = 512
    public var intermediateSize: Int = 2048
    public var numAttentionHeads: Int = 8
    public var numHiddenLayers: Int = 12
    public var maxPositionEmbeddings: Int = 77
    public var hiddenAct: String = "quick_gelu"
    public var layerNormEps: Double = 1e-5

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numAttentionHeads = "num_attention_heads", numHiddenLayers = "num_hidden_layers"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps
    }

    /// Reads and checks `url`; errors name the file and the field.
    public static func load(_ url: URL) throws -> CLIPTextConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)") }
        return try parse(data, file: url.path)
    }

    /// Parses and checks a config.json's contents; errors name `file` and the field.
    public static func parse(_ data: Data, file: String) throws -> CLIPTextConfig {
        let config: CLIPTextConfig
        do { config = try JSONDecoder().decode(CLIPTextConfig.self, from: data) } catch {
            throw ConfigError(file: file, "not a valid CLIPTextConfig: \(error)")
        }
        try config.validate(file: file)
        return config
    }

    public func validate(file: String) throws {
        guard ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh"].contains(hiddenAct) else {
            throw ConfigError(file: file, "hidden_act '\(hiddenAct)' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)")
        }
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw ConfigError(file: file, "hidden_size \(hiddenSize) does not split into num_attention_heads \(numAttentionHeads)")
        }
        guard vocabSize > 0, intermediateSize > 0, numHiddenLayers >= 0, maxPositionEmbeddings > 0 else {
            throw ConfigError(file: file, "sizes must be positive")
        }
    }
}
