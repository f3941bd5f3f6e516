import Foundation
import NeuralNetworks
import TensorEngine

/// Sinusoidal timestep embedding; matches diffusers' `get_timestep_embedding` (max_period 10000,
/// scale 1): frequencies exp(-ln(10000) i / (half - freq_shift)), [sin, cos] or, flipped, [cos, sin],
/// computed in float32 as diffusers does.
public func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool, freqShift: Float) -> Tensor {
    let half = dim / 2
    let logPeriod = Float(Foundation.log(10000.0))
    return Autograd.noGrad {
        // Each step rounds as diffusers' float32 expression: exp((-ln(10000) * i) / (half - shift)), t * freq.
        let frequencies = (Tensor.arange(half) * (-logPeriod) / Tensor(Float(half) - freqShift)).exp()
        let arguments = Tensor(shape: [timesteps.count, 1], timesteps) * frequencies.reshaped([1, half])
        let (s, c) = (arguments.sin(), arguments.cos())
        return Tensor.concat(flipSinToCos ? [c, s] : [s, c], axis: 1).padded(axis: 1, before: 0, after: dim - 2 * half)
    }
}

/// diffusers' `TimestepEmbedding`: linear_1, SiLU, linear_2.
public final class TimestepEmbeddingMLP: Module {
    let linear1: Linear, linear2: Linear
    public init(_ inDim: Int, _ dim: Int, generator: inout RandomGenerator) {
        linear1 = Linear(inDim, dim, generator: &generator)
        linear2 = Linear(dim, dim, generator: &generator)
        super.init()
        child("linear_1", linear1)
        child("linear_2", linear2)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(linear1(x).silu()) }
}

/// diffusers' `ResnetBlock2D` with `time_embedding_norm="default"`:
/// h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)); h = conv2(SiLU(norm2(h)));
/// out = (shortcut(x) + h) / output_scale_factor. Dropout is not applied (rate 0 in our configs).
/// With `tembChannels` nil (the VAE's blocks, `temb_channels=None`) there is no `time_emb_proj`.
public final class ResnetBlock2D: Module {
    let norm1: GroupNorm, conv1: Conv2d, timeEmbProj: Linear?, norm2: GroupNorm, conv2: Conv2d
    let convShortcut: Conv2d?
    let outputScaleFactor: Float

    public init(in inC: Int, out outC: Int, tembChannels: Int?, groups: Int, eps: Float, outputScaleFactor: Float = 1,
                generator g: inout RandomGenerator) {
        norm1 = GroupNorm(groups: groups, channels: inC, eps: eps)
        conv1 = Conv2d(inC, outC, kernelSize: 3, padding: 1, generator: &g)
        timeEmbProj = tembChannels.map { Linear($0, outC, generator: &g) }
        norm2 = GroupNorm(groups: groups, channels: outC, eps: eps)
        conv2 = Conv2d(outC, outC, kernelSize: 3, padding: 1, generator: &g)
        convShortcut = inC != outC ? Conv2d(inC, outC, kernelSize: 1, generator: &g) : nil
        self.outputScaleFactor = outputScaleFactor
        super.init()
        child("norm1", norm1); child("conv1", conv1)
        if let t = timeEmbProj { child("time_emb_proj", t) }
        child("norm2", norm2); child("conv2", conv2)
        if let s = convShortcut { child("conv_shortcut", s) }
    }

    /// `tembActivated` is SiLU(temb), computed once per forward by the U-Net (nil without time
    /// embedding).
    public func callAsFunction(_ x: Tensor, _ tembActivated: Tensor?) -> Tensor {
        var h = conv1(norm1.withSiLU(x))
        if let timeEmbProj, let tembActivated {
            let t = timeEmbProj(tembActivated)
            h = h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = conv2(norm2.withSiLU(h))
        let skip = convShortcut.map { $0(x) } ?? x
        let out = skip + h
        return outputScaleFactor == 1 ? out : out / outputScaleFactor
    }
}

/// diffusers' `Attention` as built for UNet2DModel's blocks (`_from_deprecated_attn_block`):
/// group_norm, single-head-dim multi-head self-attention over H*W positions with to_q/to_k/to_v
/// and to_out.0, residual connection, division by `rescale_output_factor`.
public final class SpatialSelfAttention: Module {
    let groupNorm: GroupNorm
    let toQ: Linear, toK: Linear, toV: Linear, toOut: ModuleList<Linear>
    let heads: Int
    let rescale: Float

    public init(channels: Int, headDim: Int, groups: Int, eps: Float, rescale: Float, generator g: inout RandomGenerator) {
        precondition(channels % headDim == 0, "attention: \(channels) channels not divisible by head dim \(headDim)")
        heads = channels / headDim
        groupNorm = GroupNorm(groups: groups, channels: channels, eps: eps)
        toQ = Linear(channels, channels, generator: &g)
        toK = Linear(channels, channels, generator: &g)
        toV = Linear(channels, channels, generator: &g)
        toOut = ModuleList([Linear(channels, channels, generator: &g)])
        self.rescale = rescale
        super.init()
        child("group_norm", groupNorm); child("to_q", toQ); child("to_k", toK); child("to_v", toV); child("to_out", toOut)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], l = h * w, d = c / heads
        let tokens = groupNorm(x).reshaped([b, c, l]).transposed(1, 2)          // [B, L, C]
        func split(_ t: Tensor) -> Tensor { t.reshaped([b, l, heads, d]).transposed(1, 2) } // [B, H, L, d]
        let attended = Tensor.scaledDotProductAttention(query: split(toQ(tokens)), key: split(toK(tokens)),
                                                        value: split(toV(tokens)))
        let merged = attended.transposed(1, 2).reshaped([b, l, c])
        let out = toOut[0](merged).transposed(1, 2).reshaped([b, c, h, w]) + x
        return rescale == 1 ? out : out / rescale
    }
}

/// diffusers' `Downsample2D(use_conv=True)`: a 3x3 stride-2 convolution, key `conv`.
public final class Downsample2D: Module {
    let conv: Conv2d
    public init(channels: Int, padding: Int, generator g: inout RandomGenerator) {
        conv = Conv2d(channels, channels, kernelSize: 3, stride: 2, padding: padding, generator: &g)
        super.init()
        child("conv", conv)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x) }
}

/// diffusers' `Upsample2D(use_conv=True)`: nearest 2x, then a 3x3 convolution, key `conv`.
public final class Upsample2D: Module {
    let conv: Conv2d
    public init(channels: Int, generator g: inout RandomGenerator) {
        conv = Conv2d(channels, channels, kernelSize: 3, padding: 1, generator: &g)
        super.init()
        child("conv", conv)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x.upsampleNearest2x()) }
}

/// DownBlock2D / AttnDownBlock2D: resnets (with attention after each for Attn), then an optional
/// downsampler; returns the output and every intermediate state for the skip connections.
final class DownBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<SpatialSelfAttention>?
    let downsamplers: ModuleList<Downsample2D>?

    init(in inC: Int, out outC: Int, layers: Int, attention: Bool, addDownsample: Bool, config: UNet2DConfig,
         generator g: inout RandomGenerator) {
        let eps = Float(config.normEps), groups = config.normNumGroups
        resnets = ModuleList((0..<layers).map { i in
            ResnetBlock2D(in: i == 0 ? inC : outC, out: outC, tembChannels: config.timeEmbedDim, groups: groups, eps: eps, generator: &g)
        })
        attentions = attention ? ModuleList((0..<layers).map { _ in
            SpatialSelfAttention(channels: outC, headDim: config.attentionHeadDim ?? outC, groups: groups, eps: eps,
                                 rescale: 1, generator: &g)
        }) : nil
        downsamplers = addDownsample ? ModuleList([Downsample2D(channels: outC, padding: config.downsamplePadding, generator: &g)]) : nil
        super.init()
        child("resnets", resnets)
        if let a = attentions { child("attentions", a) }
        if let d = downsamplers { child("downsamplers", d) }
    }

    func callAsFunction(_ x: Tensor, _ temb: Tensor) -> (Tensor, [Tensor]) {
        var h = x
        var states: [Tensor] = []
        for i in 0..<resnets.count {
            h = resnets[i](h, temb)
            if let a = attentions { h = a[i](h) }
            states.append(h)
        }
        if let d = downsamplers { h = d[0](h); states.append(h) }
        return (h, states)
    }
}

/// UpBlock2D / AttnUpBlock2D: each resnet takes the running state concatenated (channels) with
/// the matching skip state, then optional attention; then an optional upsampler.
final class UpBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<SpatialSelfAttention>?
    let upsamplers: ModuleList<Upsample2D>?

    init(in inC: Int, out outC: Int, prevOut: Int, layers: Int, attention: Bool, addUpsample: Bool, config: UNet2DConfig,
         generator g: inout RandomGenerator) {
        let eps = Float(config.normEps), groups = config.normNumGroups
        resnets = ModuleList((0..<layers).map { i in
            let skipC = i == layers - 1 ? inC : outC
            let resIn = i == 0 ? prevOut : outC
            return ResnetBlock2D(in: resIn + skipC, out: outC, tembChannels: config.timeEmbedDim, groups: groups, eps: eps, generator: &g)
        })
        attentions = attention ? ModuleList((0..<layers).map { _ in
            SpatialSelfAttention(channels: outC, headDim: config.attentionHeadDim ?? outC, groups: groups, eps: eps,
                                 rescale: 1, generator: &g)
        }) : nil
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outC, generator: &g)]) : nil
        super.init()
        child("resnets", resnets)
        if let a = attentions { child("attentions", a) }
        if let u = upsamplers { child("upsamplers", u) }
    }

    /// `skips` are consumed from the end.
    func callAsFunction(_ x: Tensor, _ skips: inout [Tensor], _ temb: Tensor) -> Tensor {
        var h = x
        for i in 0..<resnets.count {
            let skip = skips.removeLast()
            h = resnets[i](Tensor.concat([h, skip], axis: 1), temb)
            if let a = attentions { h = a[i](h) }
        }
        if let u = upsamplers { h = u[0](h) }
        return h
    }
}

/// diffusers' `UNetMidBlock2D`: resnet, (attention, resnet) once.
final class MidBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<SpatialSelfAttention>?

    init(channels: Int, config: UNet2DConfig, generator g: inout RandomGenerator) {
        let eps = Float(config.normEps), groups = config.normNumGroups, scale = Float(config.midBlockScaleFactor)
        resnets = ModuleList((0..<2).map { _ in
            ResnetBlock2D(in: channels, out: channels, tembChannels: config.timeEmbedDim, groups: groups, eps: eps,
                          outputScaleFactor: scale, generator: &g)
        })
        attentions = config.addAttention ? ModuleList([
            SpatialSelfAttention(channels: channels, headDim: config.attentionHeadDim ?? channels,
                                 groups: config.attnNormNumGroups ?? groups, eps: eps, rescale: scale, generator: &g),
        ]) : nil
        super.init()
        if let a = attentions { child("attentions", a) }
        child("resnets", resnets)
    }

    func callAsFunction(_ x: Tensor, _ temb: Tensor) -> Tensor {
        var h = resnets[0](x, temb)
        if let a = attentions { h = a[0](h) }
        return resnets[1](h, temb)
    }
}
