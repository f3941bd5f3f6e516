import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// CrossAttnDownBlock2D / DownBlock2D: resnets (each followed by a Transformer2DModel for the
/// cross-attention kind), then an optional `downsamplers.0` (3x3 stride-2 convolution, key
/// `conv`); returns the output and every intermediate state for the skip connections.
final class ConditionDownBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<Transformer2D>?
    let downsamplers: ModuleList<Downsample2D>?

    init(in inC: Int, out outC: Int, index i: Int, config c: UNet2DConditionConfig, generator g: inout RandomGenerator) {
        let eps = Float(c.normEps), groups = c.normNumGroups, layers = c.layersPerBlock
        resnets = ModuleList((0..<layers).map { j in
            ResnetBlock2D(in: j == 0 ? inC : outC, out: outC, tembChannels: c.timeEmbedDim, groups: groups, eps: eps, generator: &g)
        })
        attentions = c.downBlockTypes[i].hasCrossAttention ? ModuleList((0..<layers).map { _ in
            Transformer2D(channels: outC, heads: c.attentionHeads[i], contextDim: c.crossAttentionDim[i], groups: groups,
                          linearProjection: c.useLinearProjection, generator: &g)
        }) : nil
        downsamplers = i < c.blockOutChannels.count - 1
            ? ModuleList([Downsample2D(channels: outC, padding: c.downsamplePadding, generator: &g)]) : nil
        super.init()
        if let a = attentions { child("attentions", a) }
        child("resnets", resnets)
        if let d = downsamplers { child("downsamplers", d) }
    }

    func callAsFunction(_ x: Tensor, _ temb: Tensor, _ context: Tensor) -> (Tensor, [Tensor]) {
        var h = x
        var states: [Tensor] = []
        for j in 0..<resnets.count {
            h = resnets[j](h, temb)
            if let a = attentions { h = a[j](h, context: context) }
            states.append(h)
        }
        if let d = downsamplers { h = d[0](h); states.append(h) }
        return (h, states)
    }
}

/// UNetMidBlock2DCrossAttn: resnets.0, attentions.0, resnets.1 (`mid_block_scale_factor` divides
/// the resnets' outputs).
final class ConditionMidBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<Transformer2D>

    init(config c: UNet2DConditionConfig, generator g: inout RandomGenerator) {
        let ch = c.blockOutChannels[c.blockOutChannels.count - 1], eps = Float(c.normEps), groups = c.normNumGroups
        let scale = Float(c.midBlockScaleFactor)
        let first = ResnetBlock2D(in: ch, out: ch, tembChannels: c.timeEmbedDim, groups: groups, eps: eps,
                                  outputScaleFactor: scale, generator: &g)
        attentions = ModuleList([Transformer2D(channels: ch, heads: c.attentionHeads[c.attentionHeads.count - 1],
                                               contextDim: c.crossAttentionDim[c.crossAttentionDim.count - 1], groups: groups,
                                               linearProjection: c.useLinearProjection, generator: &g)])
        let second = ResnetBlock2D(in: ch, out: ch, tembChannels: c.timeEmbedDim, groups: groups, eps: eps,
                                   outputScaleFactor: scale, generator: &g)
        resnets = ModuleList([first, second])
        super.init()
        child("attentions", attentions)
        child("resnets", resnets)
    }

    func callAsFunction(_ x: Tensor, _ temb: Tensor, _ context: Tensor) -> Tensor {
        resnets[1](attentions[0](resnets[0](x, temb), context: context), temb)
    }
}

/// UpBlock2D / CrossAttnUpBlock2D: `layers_per_block + 1` resnets, each on the running state
/// concatenated (channels) with the next skip state, each followed by a Transformer2DModel for the
/// cross-attention kind; then an optional `upsamplers.0` (nearest 2x, 3x3 convolution). Spatial
/// sizes must halve exactly on the way down (diffusers' `upsample_size` path is not implemented).
final class ConditionUpBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<Transformer2D>?
    let upsamplers: ModuleList<Upsample2D>?

    init(in inC: Int, out outC: Int, prevOut: Int, index i: Int, config c: UNet2DConditionConfig, generator g: inout RandomGenerator) {
        let eps = Float(c.normEps), groups = c.normNumGroups, layers = c.layersPerBlock + 1
        let heads = Array(c.attentionHeads.reversed())[i], context = Array(c.crossAttentionDim.reversed())[i]
        resnets = ModuleList((0..<layers).map { j in
            let skipC = j == layers - 1 ? inC : outC
            let resIn = j == 0 ? prevOut : outC
            return ResnetBlock2D(in: resIn + skipC, out: outC, tembChannels: c.timeEmbedDim, groups: groups, eps: eps, generator: &g)
        })
        attentions = c.upBlockTypes[i].hasCrossAttention ? ModuleList((0..<layers).map { _ in
            Transformer2D(channels: outC, heads: heads, contextDim: context, groups: groups,
                          linearProjection: c.useLinearProjection, generator: &g)
        }) : nil
        upsamplers = i < c.blockOutChannels.count - 1 ? ModuleList([Upsample2D(channels: outC, generator: &g)]) : nil
        super.init()
        if let a = attentions { child("attentions", a) }
        child("resnets", resnets)
        if let u = upsamplers { child("upsamplers", u) }
    }

    func callAsFunction(_ x: Tensor, _ skips: inout [Tensor], _ temb: Tensor, _ context: Tensor) -> Tensor {
        var h = x
        for j in 0..<resnets.count {
            h = resnets[j](Tensor.concat([h, skips.removeLast()], axis: 1), temb)
            if let a = attentions { h = a[j](h, context: context) }
        }
        if let u = upsamplers { h = u[0](h) }
        return h
    }
}
