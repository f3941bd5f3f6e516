import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// diffusers' `Attention` as BasicTransformerBlock builds it: to_q [inner, dim], to_k / to_v
/// [inner, context dim] without biases, to_out.0 with a bias; multi-head attention of the
/// queries over the context (itself for self-attention). Not implemented: attention masks,
/// group/spatial norms, the cross-attention norm, dropout.
final class CrossAttention: Module {
    let toQ: Linear, toK: Linear, toV: Linear, toOut: ModuleList<Linear>
    let heads: Int

    init(queryDim: Int, contextDim: Int, heads: Int, headDim: Int, generator g: inout RandomGenerator) {
        let inner = heads * headDim
        self.heads = heads
        toQ = Linear(queryDim, inner, bias: false, generator: &g)
        toK = Linear(contextDim, inner, bias: false, generator: &g)
        toV = Linear(contextDim, inner, bias: false, generator: &g)
        toOut = ModuleList([Linear(inner, queryDim, generator: &g)])
        super.init()
        child("to_q", toQ); child("to_k", toK); child("to_v", toV); child("to_out", toOut)
    }

    /// `x` [B, L, dim], `context` [B, S, contextDim] (nil: self-attention) -> [B, L, dim].
    func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
        let ctx = context ?? x
        let b = x.shape[0], l = x.shape[1], s = ctx.shape[1]
        let q = toQ(x), k = toK(ctx), v = toV(ctx)
        let inner = q.shape[2], d = inner / heads
        func split(_ t: Tensor, _ n: Int) -> Tensor { t.reshaped([b, n, heads, d]).transposed(1, 2) }
        let a = Tensor.scaledDotProductAttention(query: split(q, l), key: split(k, s), value: split(v, s))
        return toOut[0](a.transposed(1, 2).reshaped([b, l, inner]))
    }
}

/// diffusers' `FeedForward` with `activation_fn="geglu"`: `net.0.proj` [2 * 4 dim, dim], split into
/// hidden and gate, hidden * GELU(gate) (erf GELU), then `net.2` [dim, 4 dim].
final class GEGLUFeedForward: Module {
    let proj: Linear, out: Linear

    init(dim: Int, generator g: inout RandomGenerator) {
        let inner = 4 * dim
        proj = Linear(dim, 2 * inner, generator: &g)
        out = Linear(inner, dim, generator: &g)
        super.init()
        let geglu = Module()
        geglu.child("proj", proj)
        let net = Module()
        net.child("0", geglu)
        net.child("2", out)
        child("net", net)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let parts = proj(x).chunked(2, axis: -1)
        return out(parts[0] * parts[1].gelu())
    }
}

/// diffusers' `BasicTransformerBlock` as SD 1.x / 2.x use it (layer norms, no ada-norm):
/// x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)).
final class BasicTransformerBlock: Module {
    let norm1: LayerNorm, attn1: CrossAttention, norm2: LayerNorm, attn2: CrossAttention
    let norm3: LayerNorm, ff: GEGLUFeedForward

    init(dim: Int, heads: Int, headDim: Int, contextDim: Int, generator g: inout RandomGenerator) {
        norm1 = LayerNorm(dim)
        attn1 = CrossAttention(queryDim: dim, contextDim: dim, heads: heads, headDim: headDim, generator: &g)
        norm2 = LayerNorm(dim)
        attn2 = CrossAttention(queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim, generator: &g)
        norm3 = LayerNorm(dim)
        ff = GEGLUFeedForward(dim: dim, generator: &g)
        super.init()
        child("norm1", norm1); child("attn1", attn1); child("norm2", norm2); child("attn2", attn2)
        child("norm3", norm3); child("ff", ff)
    }

    func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        var h = attn1(norm1(x)) + x
        h = attn2(norm2(h), context: context) + h
        return ff(norm3(h)) + h
    }
}

/// diffusers' `Transformer2DModel` for continuous input with one transformer layer: GroupNorm
/// (eps 1e-6), proj_in (a 1x1 convolution before flattening for SD 1.x, a linear after it with
/// `use_linear_projection` for SD 2.x), the block, proj_out likewise, plus the input. Not
/// implemented: discrete / patched input, ada-norm variants, several layers.
final class Transformer2D: Module {
    let norm: GroupNorm
    let projInConv: Conv2d?, projInLinear: Linear?
    let blocks: ModuleList<BasicTransformerBlock>
    let projOutConv: Conv2d?, projOutLinear: Linear?

    init(channels: Int, heads: Int, contextDim: Int, groups: Int, linearProjection: Bool, generator g: inout RandomGenerator) {
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        if linearProjection {
            projInLinear = Linear(channels, channels, generator: &g); projInConv = nil
        } else {
            projInConv = Conv2d(channels, channels, kernelSize: 1, generator: &g); projInLinear = nil
        }
        blocks = ModuleList([BasicTransformerBlock(dim: channels, heads: heads, headDim: channels / heads, contextDim: contextDim,
                                                   generator: &g)])
        if linearProjection {
            projOutLinear = Linear(channels, channels, generator: &g); projOutConv = nil
        } else {
            projOutConv = Conv2d(channels, channels, kernelSize: 1, generator: &g); projOutLinear = nil
        }
        super.init()
        child("norm", norm)
        if let p = projInConv { child("proj_in", p) }
        if let p = projInLinear { child("proj_in", p) }
        child("transformer_blocks", blocks)
        if let p = projOutConv { child("proj_out", p) }
        if let p = projOutLinear { child("proj_out", p) }
    }

    /// `x` [B, C, H, W], `context` [B, S, contextDim].
    func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        var t = norm(x)
        if let projInConv { t = projInConv(t) }
        t = t.reshaped([b, c, h * w]).transposed(1, 2)
        if let projInLinear { t = projInLinear(t) }
        for block in blocks.items { t = block(t, context: context) }
        if let projOutLinear { t = projOutLinear(t) }
        t = t.transposed(1, 2).reshaped([b, c, h, w])
        if let projOutConv { t = projOutConv(t) }
        return t + x
    }
}
