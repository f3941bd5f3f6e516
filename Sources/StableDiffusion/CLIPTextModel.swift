import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// transformers' `CLIPTextModel` with the same module tree, so checkpoint keys are transformers'
/// (`text_model.embeddings.token_embedding.weight`, `text_model.encoder.layers.N.self_attn.q_proj.weight`,
/// ..., `text_model.final_layer_norm.bias`). Matches its forward without an attention mask (as
/// Stable Diffusion pipelines call it): token + position embeddings, pre-LN causal self-attention
/// layers, final layer norm. Not implemented: the pooled output, padding attention masks, dropout.
public final class CLIPTextModel: Module {
    public let config: CLIPTextConfig
    let textModel: CLIPTextTransformer

    /// Builds the model with random weights drawn from `seed` (for tests; load real weights).
    public init(config: CLIPTextConfig, seed: UInt64 = 0) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        textModel = CLIPTextTransformer(config, generator: &g)
        super.init()
        child("text_model", textModel)
    }

    /// The text model's outputs for `ids` [N, L] (token ids as Float, L <= max_position_embeddings).
    public struct Output {
        /// [N, L, hidden] after the final layer norm (what SD 1.x and 2.x condition on).
        public let lastHiddenState: Tensor
        /// transformers' `hidden_states`: the embeddings, then each layer's output (no final norm);
        /// empty unless asked for.
        public let hiddenStates: [Tensor]
    }

    public func callAsFunction(_ ids: Tensor, outputHiddenStates: Bool = false) -> Output {
        textModel(ids, outputHiddenStates: outputHiddenStates)
    }

    /// `last_hidden_state` for token-id rows (e.g. `CLIPTokenizer.encodePadded`), [rows, L, hidden],
    /// computed without recording gradients (inference, as the pipelines run it).
    public func encode(_ rows: [[Int]]) -> Tensor {
        precondition(!rows.isEmpty && rows.allSatisfy { $0.count == rows[0].count }, "CLIPTextModel: id rows must have one length")
        let ids = Tensor(shape: [rows.count, rows[0].count], rows.flatMap { $0.map(Float.init) })
        return Autograd.noGrad { self(ids).lastHiddenState }
    }
}

/// `text_model`: embeddings, encoder, final_layer_norm.
final class CLIPTextTransformer: Module {
    let tokenEmbedding: Embedding
    let positionEmbedding: Embedding
    let layers: ModuleList<CLIPEncoderLayer>
    let finalLayerNorm: LayerNorm

    init(_ c: CLIPTextConfig, generator g: inout RandomGenerator) {
        tokenEmbedding = Embedding(c.vocabSize, c.hiddenSize, generator: &g)
        positionEmbedding = Embedding(c.maxPositionEmbeddings, c.hiddenSize, generator: &g)
        layers = ModuleList((0..<c.numHiddenLayers).map { _ in CLIPEncoderLayer(c, generator: &g) })
        finalLayerNorm = LayerNorm(c.hiddenSize, eps: Float(c.layerNormEps))
        super.init()
        let embeddings = Module(), encoder = Module()
        embeddings.child("token_embedding", tokenEmbedding)
        embeddings.child("position_embedding", positionEmbedding)
        encoder.child("layers", layers)
        child("embeddings", embeddings)
        child("encoder", encoder)
        child("final_layer_norm", finalLayerNorm)
    }

    func callAsFunction(_ ids: Tensor, outputHiddenStates: Bool) -> CLIPTextModel.Output {
        precondition(ids.rank == 2, "CLIPTextModel: ids \(ids.shape), expected [N, L]")
        let length = ids.shape[1], maxLength = positionEmbedding.count
        precondition(length <= maxLength, "CLIPTextModel: \(length) tokens, at most \(maxLength) positions")
        var h = tokenEmbedding(ids) + positionEmbedding(Tensor.arange(length))
        var states: [Tensor] = outputHiddenStates ? [h] : []
        for layer in layers.items {
            h = layer(h)
            if outputHiddenStates { states.append(h) }
        }
        return CLIPTextModel.Output(lastHiddenState: finalLayerNorm(h), hiddenStates: states)
    }
}

/// One pre-LN encoder layer: `layer_norm1`, `self_attn` (causal), `layer_norm2`, `mlp.fc1/fc2`.
final class CLIPEncoderLayer: Module {
    let layerNorm1: LayerNorm, layerNorm2: LayerNorm
    let q: Linear, k: Linear, v: Linear, out: Linear
    let fc1: Linear, fc2: Linear
    let heads: Int
    let activation: String

    init(_ c: CLIPTextConfig, generator g: inout RandomGenerator) {
        let d = c.hiddenSize
        heads = c.numAttentionHeads
        activation = c.hiddenAct
        layerNorm1 = LayerNorm(d, eps: Float(c.layerNormEps))
        layerNorm2 = LayerNorm(d, eps: Float(c.layerNormEps))
        k = Linear(d, d, generator: &g); v = Linear(d, d, generator: &g)
        q = Linear(d, d, generator: &g); out = Linear(d, d, generator: &g)
        fc1 = Linear(d, c.intermediateSize, generator: &g)
        fc2 = Linear(c.intermediateSize, d, generator: &g)
        super.init()
        let attn = Module(), mlp = Module()
        attn.child("k_proj", k); attn.child("v_proj", v); attn.child("q_proj", q); attn.child("out_proj", out)
        mlp.child("fc1", fc1); mlp.child("fc2", fc2)
        child("self_attn", attn)
        child("layer_norm1", layerNorm1)
        child("mlp", mlp)
        child("layer_norm2", layerNorm2)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let n = x.shape[0], l = x.shape[1], d = x.shape[2], dh = d / heads
        let y = layerNorm1(x)
        func split(_ t: Tensor) -> Tensor { t.reshaped([n, l, heads, dh]).permuted([0, 2, 1, 3]) }
        let a = Tensor.scaledDotProductAttention(query: split(q(y)), key: split(k(y)), value: split(v(y)), causal: true)
        let h = x + out(a.permuted([0, 2, 1, 3]).reshaped([n, l, d]))
        var m = fc1(layerNorm2(h))
        switch activation {
        case "quick_gelu": m = m.quickGelu()
        case "gelu": m = m.gelu()
        default: m = m.gelu(approximate: true)
        }
        return h + fc2(m)
    }
}
