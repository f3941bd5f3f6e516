import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// diffusers' `get_2d_sincos_pos_embed(embed_dim, (height, width), base_size=baseSize,
/// interpolation_scale=interpolationScale)` as a [1, height * width, embedDim] tensor: token
/// m = row * width + column gets, in its first half, the 1-D embedding of its column position and,
/// in its second half, that of its row position; each 1-D embedding is [sin(p w_k), cos(p w_k)]
/// for w_k = 10000^(-k / (embedDim / 4)), k < embedDim / 4. Positions are
/// index / (size / baseSize) / interpolationScale, computed in Float32 as diffusers does; the
/// sines and cosines in Float64, rounded once (diffusers' float64 path, then `.float()`).
/// `embedDim` must be divisible by 4.
public func sinusoidalPositionTable(embedDim: Int, height: Int, width: Int, baseSize: Int,
                                    interpolationScale: Float = 1) -> Tensor {
    precondition(embedDim % 4 == 0 && embedDim > 0, "sinusoidalPositionTable: embedDim \(embedDim) is not a positive multiple of 4")
    let quarter = embedDim / 4
    let omega = (0..<quarter).map { 1.0 / Foundation.pow(10000.0, Double($0) / (Double(embedDim / 2) / 2.0)) }
    func positions(_ n: Int) -> [Double] {
        let stride = Float(Double(n) / Double(baseSize))
        return (0..<n).map { Double(Float($0) / stride / interpolationScale) }
    }
    let rows = positions(height), columns = positions(width)
    var table = [Float](repeating: 0, count: height * width * embedDim)
    for i in 0..<height {
        for j in 0..<width {
            let row = (i * width + j) * embedDim
            for k in 0..<quarter {
                let c = columns[j] * omega[k], r = rows[i] * omega[k]
                table[row + k] = Float(Foundation.sin(c))
                table[row + quarter + k] = Float(Foundation.cos(c))
                table[row + 2 * quarter + k] = Float(Foundation.sin(r))
                table[row + 3 * quarter + k] = Float(Foundation.cos(r))
            }
        }
    }
    return Tensor(shape: [1, height * width, embedDim], table)
}

/// diffusers' `PatchEmbed` as the DiT builds it (no layer norm, `bias` true, sinusoidal positions,
/// interpolation scale 1, no `pos_embed_max_size`): `proj`, a patch x patch convolution of stride
/// patch, flattened to tokens [N, (H/p)(W/p), D] in row-major order, plus the positional table.
/// The table is not a parameter (diffusers registers it as a non-persistent buffer, so it is not in
/// checkpoints); it is built for the config's sample size and, as in diffusers, rebuilt for another
/// input size with the same base size.
final class PatchEmbed: Module {
    let proj: Conv2d
    let patchSize: Int, embedDim: Int, baseSize: Int
    /// [1, baseSize^2, D]: the positions at the sample size.
    let table: Tensor

    init(sampleSize: Int, patchSize: Int, inChannels: Int, embedDim: Int, generator g: inout RandomGenerator) {
        proj = Conv2d(inChannels, embedDim, kernelSize: patchSize, stride: patchSize, generator: &g)
        self.patchSize = patchSize
        self.embedDim = embedDim
        baseSize = sampleSize / patchSize
        table = sinusoidalPositionTable(embedDim: embedDim, height: baseSize, width: baseSize, baseSize: baseSize)
        super.init()
        child("proj", proj)
    }

    /// `latent` [N, C, H, W] -> tokens [N, (H/p)(W/p), D].
    func callAsFunction(_ latent: Tensor) -> Tensor {
        let n = latent.shape[0], h = latent.shape[2] / patchSize, w = latent.shape[3] / patchSize
        let tokens = proj(latent).reshaped([n, embedDim, h * w]).transposed(1, 2)
        let positions = h == baseSize && w == baseSize
            ? table : sinusoidalPositionTable(embedDim: embedDim, height: h, width: w, baseSize: baseSize)
        return tokens + positions
    }
}

/// diffusers' `LabelEmbedding` inside `CombinedTimestepLabelEmbeddings`: `embedding_table`
/// [classes + 1, D]. The extra row is the null class (id `classes`): diffusers builds it because
/// `class_dropout_prob` is fixed at 0.1 there. Label dropout (training only, random) is not
/// applied: ids are looked up as given.
final class LabelEmbedding: Module {
    let table: Embedding

    init(classes: Int, dim: Int, generator g: inout RandomGenerator) {
        table = Embedding(classes + 1, dim, generator: &g)
        super.init()
        child("embedding_table", table)
    }

    func callAsFunction(_ ids: Tensor) -> Tensor { table(ids) }
}

/// diffusers' `CombinedTimestepLabelEmbeddings`: `timestep_embedder` (linear_1 [D, 256], SiLU,
/// linear_2 [D, D]) applied to the 256-wide sinusoidal projection of the timestep (cos first,
/// frequency shift 1), plus `class_embedder`'s row for the label.
final class TimestepLabelEmbedding: Module {
    static let projectionWidth = 256
    let timestepEmbedder: TimestepEmbeddingMLP
    let classEmbedder: LabelEmbedding

    init(classes: Int, dim: Int, generator g: inout RandomGenerator) {
        timestepEmbedder = TimestepEmbeddingMLP(Self.projectionWidth, dim, generator: &g)
        classEmbedder = LabelEmbedding(classes: classes, dim: dim, generator: &g)
        super.init()
        child("timestep_embedder", timestepEmbedder)
        child("class_embedder", classEmbedder)
    }

    /// diffusers' `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1)`, [N, 256]; it has no
    /// weights, so one projection serves every block.
    static func projection(_ timesteps: [Float]) -> Tensor {
        timestepEmbedding(timesteps, dim: projectionWidth, flipSinToCos: true, freqShift: 1)
    }

    /// `projection` [N, 256], `labels` [N] class ids -> conditioning [N, D].
    func callAsFunction(projection: Tensor, labels: Tensor) -> Tensor {
        timestepEmbedder(projection) + classEmbedder(labels)
    }
}

/// diffusers' `AdaLayerNormZero` with its own embedding: `emb` (the block's timestep + label
/// embedding) and `linear` [6 D, D] applied to SiLU of it, giving shift, scale and gate of the
/// attention branch and of the feed-forward branch; the attention input is
/// LayerNorm(x) * (1 + scale) + shift (no affine, eps 1e-6).
final class AdaLayerNormZero: Module {
    let emb: TimestepLabelEmbedding
    let linear: Linear

    init(dim: Int, classes: Int, generator g: inout RandomGenerator) {
        emb = TimestepLabelEmbedding(classes: classes, dim: dim, generator: &g)
        linear = Linear(dim, 6 * dim, generator: &g)
        super.init()
        child("emb", emb)
        child("linear", linear)
    }

    /// The six modulations, each [N, 1, D] (broadcast over tokens), from the conditioning [N, D].
    func modulations(_ conditioning: Tensor) -> [Tensor] {
        let n = conditioning.shape[0], d = conditioning.shape[1]
        return linear(conditioning.silu()).chunked(6, axis: 1).map { $0.reshaped([n, 1, d]) }
    }
}

/// LayerNorm over the last dimension without affine parameters, then x * (1 + scale) + shift.
func modulatedLayerNorm(_ x: Tensor, eps: Float, shift: Tensor, scale: Tensor) -> Tensor {
    let d = x.shape[x.rank - 1]
    return x.layerNorm(normalizedShape: [d], eps: eps) * (scale + 1) + shift
}

/// diffusers' `Attention` as the DiT's self-attention: to_q, to_k, to_v [inner, dim] (biases when
/// `attention_bias`), to_out.0 [dim, inner] with a bias; heads of `headDim`, scale 1/sqrt(headDim).
/// Dropout is not applied.
final class SelfAttention: Module {
    let toQ: Linear, toK: Linear, toV: Linear, toOut: ModuleList<Linear>
    let heads: Int, headDim: Int

    init(dim: Int, heads: Int, headDim: Int, bias: Bool, generator g: inout RandomGenerator) {
        let inner = heads * headDim
        self.heads = heads
        self.headDim = headDim
        toQ = Linear(dim, inner, bias: bias, generator: &g)
        toK = Linear(dim, inner, bias: bias, generator: &g)
        toV = Linear(dim, inner, bias: bias, generator: &g)
        toOut = ModuleList([Linear(inner, dim, generator: &g)])
        super.init()
        child("to_q", toQ); child("to_k", toK); child("to_v", toV); child("to_out", toOut)
    }

    /// `x` [N, L, dim] -> [N, L, dim].
    func callAsFunction(_ x: Tensor) -> Tensor {
        let n = x.shape[0], l = x.shape[1], inner = heads * headDim
        func split(_ t: Tensor) -> Tensor { t.reshaped([n, l, heads, headDim]).transposed(1, 2) }
        let a = Tensor.scaledDotProductAttention(query: split(toQ(x)), key: split(toK(x)), value: split(toV(x)))
        return toOut[0](a.transposed(1, 2).reshaped([n, l, inner]))
    }
}

/// diffusers' `FeedForward` with `activation_fn` "gelu-approximate" (tanh) or "gelu" (erf):
/// `net.0.proj` [4 dim, dim], GELU, `net.2` [dim, 4 dim] (net.1 is dropout, not applied).
final class GELUFeedForward: Module {
    let proj: Linear, out: Linear
    let approximate: Bool

    init(dim: Int, approximate: Bool, generator g: inout RandomGenerator) {
        proj = Linear(dim, 4 * dim, generator: &g)
        out = Linear(4 * dim, dim, generator: &g)
        self.approximate = approximate
        super.init()
        let gelu = Module()
        gelu.child("proj", proj)
        let net = Module()
        net.child("0", gelu)
        net.child("2", out)
        child("net", net)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { out(proj(x).gelu(approximate: approximate)) }
}

/// diffusers' `BasicTransformerBlock` with `norm_type` "ada_norm_zero" and no cross-attention
/// (the DiT block):
///     shift1, scale1, gate1, shift2, scale2, gate2 = norm1.linear(SiLU(norm1.emb(t, y)))
///     x = x + gate1 * attn1(LN(x) * (1 + scale1) + shift1)
///     x = x + gate2 * ff(norm3(x) * (1 + scale2) + shift2)
/// `norm3` is LayerNorm(dim, norm_eps) with affine parameters only when `norm_elementwise_affine`.
final class DiTBlock: Module {
    let norm1: AdaLayerNormZero
    let attn1: SelfAttention
    let norm3: LayerNorm?
    let normEps: Float
    let ff: GELUFeedForward

    init(config c: DiTTransformer2DConfig, generator g: inout RandomGenerator) {
        let d = c.innerDim
        norm1 = AdaLayerNormZero(dim: d, classes: c.classCount, generator: &g)
        attn1 = SelfAttention(dim: d, heads: c.numAttentionHeads, headDim: c.attentionHeadDim, bias: c.attentionBias, generator: &g)
        normEps = Float(c.normEps)
        norm3 = c.normElementwiseAffine ? LayerNorm(d, eps: normEps) : nil
        ff = GELUFeedForward(dim: d, approximate: c.activationFn == "gelu-approximate", generator: &g)
        super.init()
        child("norm1", norm1)
        child("attn1", attn1)
        if let norm3 { child("norm3", norm3) }
        child("ff", ff)
    }

    /// `x` [N, L, D], `conditioning` [N, D] (this block's `norm1.emb` output).
    func callAsFunction(_ x: Tensor, conditioning: Tensor) -> Tensor {
        let m = norm1.modulations(conditioning)
        let attended = attn1(modulatedLayerNorm(x, eps: 1e-6, shift: m[0], scale: m[1]))
        let h = attended * m[2] + x
        let normed = norm3.map { $0(h) } ?? h.layerNorm(normalizedShape: [h.shape[2]], eps: normEps)
        return ff(normed * (m[4] + 1) + m[3]) * m[5] + h
    }
}
