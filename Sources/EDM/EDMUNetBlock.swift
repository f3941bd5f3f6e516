import Foundation
import NeuralNetworks
import TensorEngine

/// Dropout for a training forward pass: when a network is called with one, dropout (and, in the
/// networks, label dropout) draw from `generator`; without one (inference) they are the identity,
/// as EDM's modules in eval mode.
public final class EDMDropout {
    public var generator: RandomGenerator
    public init(generator: RandomGenerator) { self.generator = generator }
}

/// EDM's `UNetBlock` (the union of DDPM++, NCSN++ and ADM blocks):
///     h = conv0(SiLU(norm0(x)))                                   (conv0 may up/down-sample)
///     p = affine(emb)
///     h = SiLU(norm1(h) * (1 + scale) + shift)   adaptive_scale, [scale, shift] = p
///     h = SiLU(norm1(h + p))                     otherwise
///     h = (conv1(dropout(h)) + skip(x)) * skip_scale               (skip: identity, or a 1x1 / resampling conv)
///     h = (proj(attention(qkv(norm2(h)))) + h) * skip_scale        with attention (num_heads > 0)
/// Children `norm0`, `conv0`, `affine`, `norm1`, `conv1`, `skip`, `norm2`, `qkv`, `proj` as EDM's.
/// The qkv channels are laid out as EDM's reshape reads them: (head, channel, q|k|v).
public final class EDMUNetBlock: Module {
    public struct Options: Sendable {
        public var up = false, down = false, attention = false
        /// nil: out_channels / channelsPerHead (EDM's default).
        public var numHeads: Int? = nil
        public var channelsPerHead = 64
        public var dropout: Float = 0
        public var skipScale: Float = 1
        public var eps: Float = 1e-5
        public var resampleFilter: [Float] = [1, 1]
        public var resampleProj = false
        public var adaptiveScale = true
        public var initSpec = EDMInit(.kaimingNormal)
        public var initZero = EDMInit(.kaimingNormal, weight: 0)
        /// nil: `initSpec`.
        public var initAttn: EDMInit? = nil
        public init() {}
    }

    public let inChannels: Int, outChannels: Int, embChannels: Int
    public let numHeads: Int
    let options: Options
    let norm0: GroupNorm, conv0: EDMConv2d, affine: EDMLinear, norm1: GroupNorm, conv1: EDMConv2d
    let skip: EDMConv2d?
    let norm2: GroupNorm?, qkv: EDMConv2d?, proj: EDMConv2d?

    public init(in inChannels: Int, out outChannels: Int, emb embChannels: Int, options o: Options,
                generator g: inout RandomGenerator) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.embChannels = embChannels
        options = o
        numHeads = !o.attention ? 0 : (o.numHeads ?? outChannels / o.channelsPerHead)
        norm0 = EDMGroupNorm.make(channels: inChannels, eps: o.eps)
        conv0 = EDMConv2d(inChannels, outChannels, kernel: 3, up: o.up, down: o.down, resampleFilter: o.resampleFilter,
                          init: o.initSpec, generator: &g)
        affine = EDMLinear(embChannels, outChannels * (o.adaptiveScale ? 2 : 1), init: o.initSpec, generator: &g)
        norm1 = EDMGroupNorm.make(channels: outChannels, eps: o.eps)
        conv1 = EDMConv2d(outChannels, outChannels, kernel: 3, init: o.initZero, generator: &g)
        if outChannels != inChannels || o.up || o.down {
            let kernel = o.resampleProj || outChannels != inChannels ? 1 : 0
            skip = EDMConv2d(inChannels, outChannels, kernel: kernel, up: o.up, down: o.down, resampleFilter: o.resampleFilter,
                             init: o.initSpec, generator: &g)
        } else {
            skip = nil
        }
        if numHeads > 0 {
            precondition(outChannels % numHeads == 0, "EDMUNetBlock: \(outChannels) channels do not split into \(numHeads) heads")
            norm2 = EDMGroupNorm.make(channels: outChannels, eps: o.eps)
            qkv = EDMConv2d(outChannels, outChannels * 3, kernel: 1, init: o.initAttn ?? o.initSpec, generator: &g)
            proj = EDMConv2d(outChannels, outChannels, kernel: 1, init: o.initZero, generator: &g)
        } else {
            norm2 = nil; qkv = nil; proj = nil
        }
        super.init()
        child("norm0", norm0); child("conv0", conv0); child("affine", affine); child("norm1", norm1); child("conv1", conv1)
        if let skip { child("skip", skip) }
        if let norm2, let qkv, let proj { child("norm2", norm2); child("qkv", qkv); child("proj", proj) }
    }

    public func callAsFunction(_ x: Tensor, _ emb: Tensor, dropout: EDMDropout? = nil) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "EDMUNetBlock: input \(x.shape), expected [N, \(inChannels), H, W]")
        let n = x.shape[0]
        var h = conv0(norm0.withSiLU(x))
        let params = affine(emb).reshaped([emb.shape[0], affine.outFeatures, 1, 1])
        if options.adaptiveScale {
            let parts = params.chunked(2, axis: 1)
            h = (parts[1] + norm1(h) * (parts[0] + 1)).silu()
        } else {
            h = norm1.withSiLU(h + params)
        }
        if let dropout, options.dropout > 0 { h = h.dropout(probability: options.dropout, generator: &dropout.generator) }
        h = conv1(h) + (skip.map { $0(x) } ?? x)
        if options.skipScale != 1 { h = h * options.skipScale }
        guard let norm2, let qkv, let proj else { return h }
        let (c, height, width) = (h.shape[1], h.shape[2], h.shape[3])
        let heads = numHeads, dh = c / heads, l = height * width
        // qkv [N, 3C, H, W] read as [N * heads, dh, 3, HW] (EDM's reshape), then q, k, v as
        // [N * heads, HW, dh] for scaled dot-product attention (scale 1 / sqrt(dh), as EDM).
        let t = qkv(norm2(h)).reshaped([n * heads, dh, 3, l]).permuted([2, 0, 3, 1])
        let qkvParts = t.split(sizes: [1, 1, 1], axis: 0).map { $0.reshaped([n * heads, l, dh]) }
        let a = Tensor.scaledDotProductAttention(query: qkvParts[0], key: qkvParts[1], value: qkvParts[2])
        let merged = a.transposed(1, 2).reshaped([n, c, height, width])
        h = proj(merged) + h
        if options.skipScale != 1 { h = h * options.skipScale }
        return h
    }
}
