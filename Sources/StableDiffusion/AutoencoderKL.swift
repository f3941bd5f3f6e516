import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// diffusers' `AutoencoderKL` (the Stable Diffusion VAE) with the same module tree, so checkpoint
/// keys are diffusers' (`encoder.down_blocks.0.resnets.0.conv1.weight`, `quant_conv.weight`,
/// `decoder.up_blocks.3.resnets.2.norm2.bias`, ...).
///
/// `encode` matches `vae.encode(x).latent_dist.mean * scaling_factor` (the deterministic latent a
/// zero-shot classifier uses; no sampling from the posterior); `decode` matches
/// `vae.decode(z / scaling_factor).sample`. Not implemented: tiling, slicing, posterior sampling,
/// spatial norm (the movq variant), dropout.
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    let quantConv: Conv2d?
    let postQuantConv: Conv2d?

    /// Builds the network with PyTorch's default initialisation drawn from `seed` (for tests).
    public init(config: AutoencoderKLConfig, seed: UInt64 = 0) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        let z = config.latentChannels
        encoder = VAEEncoder(config, generator: &g)
        decoder = VAEDecoder(config, generator: &g)
        quantConv = config.useQuantConv ? Conv2d(2 * z, 2 * z, kernelSize: 1, generator: &g) : nil
        postQuantConv = config.usePostQuantConv ? Conv2d(z, z, kernelSize: 1, generator: &g) : nil
        super.init()
        child("encoder", encoder)
        child("decoder", decoder)
        if let q = quantConv { child("quant_conv", q) }
        if let q = postQuantConv { child("post_quant_conv", q) }
    }

    /// The posterior's mean and log-variance, each [N, latent, H/f, W/f], for images [N, in, H, W]
    /// in [-1, 1] (f = 2^(blocks-1); H and W need not be multiples of f, as in diffusers).
    public func moments(_ images: Tensor) -> (mean: Tensor, logVariance: Tensor) {
        precondition(images.rank == 4 && images.shape[1] == config.inChannels,
                     "AutoencoderKL: images \(images.shape), expected [N, \(config.inChannels), H, W]")
        var h = encoder(images)
        if let quantConv { h = quantConv(h) }
        let parts = h.chunked(2, axis: 1)
        return (parts[0], parts[1].clamp(min: -30, max: 20))
    }

    /// The latent a diffusion model sees: posterior mean times `scaling_factor`.
    public func encode(_ images: Tensor) -> Tensor { moments(images).mean * Float(config.scalingFactor) }

    /// Images [N, out, H*f, W*f] from scaled latents (what `encode` returns).
    public func decode(_ latents: Tensor) -> Tensor {
        precondition(latents.rank == 4 && latents.shape[1] == config.latentChannels,
                     "AutoencoderKL: latents \(latents.shape), expected [N, \(config.latentChannels), h, w]")
        var z = latents / Float(config.scalingFactor)
        if let postQuantConv { z = postQuantConv(z) }
        return decoder(z)
    }

    /// Loads a diffusers `AutoencoderKL` folder (or a pipeline folder with `vae/`), strictly.
    /// `weightStorage` keeps Linear, Conv2d and Embedding weights as 16-bit (`WeightStorage`).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> AutoencoderKL {
        let fm = FileManager.default
        let dir = fm.fileExists(atPath: folder.appendingPathComponent(DiffusersFolder.configName).path)
            ? folder : folder.appendingPathComponent("vae")
        let configURL = dir.appendingPathComponent(DiffusersFolder.configName)
        guard fm.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no config.json here or in vae/: not a diffusers AutoencoderKL folder")
        }
        let config = try AutoencoderKLConfig.load(configURL)
        let model = WeightStorage.$current.withValue(weightStorage) { AutoencoderKL(config: config) }
        let weightsURL = try DiffusersFolder.weightsURL(in: dir, name: DiffusersFolder.weightsName)
        try model.load(from: try SafetensorsFile(url: weightsURL))
        MemoryStatistics.releaseIdleBuffers()  // the random initial weights
        return model
    }
}

/// UNetMidBlock2D as the VAE builds it: resnets.0, attentions.0 (one head over all channels,
/// GroupNorm eps 1e-6), resnets.1, no time embedding.
final class VAEMidBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let attentions: ModuleList<SpatialSelfAttention>?

    init(channels ch: Int, groups: Int, attention: Bool, generator g: inout RandomGenerator) {
        let first = ResnetBlock2D(in: ch, out: ch, tembChannels: nil, groups: groups, eps: 1e-6, generator: &g)
        attentions = attention ? ModuleList([SpatialSelfAttention(channels: ch, headDim: ch, groups: groups, eps: 1e-6, rescale: 1, generator: &g)]) : nil
        resnets = ModuleList([first, ResnetBlock2D(in: ch, out: ch, tembChannels: nil, groups: groups, eps: 1e-6, generator: &g)])
        super.init()
        if let a = attentions { child("attentions", a) }
        child("resnets", resnets)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x, nil)
        if let a = attentions { h = a[0](h) }
        return resnets[1](h, nil)
    }
}

/// DownEncoderBlock2D: resnets without time embedding (eps 1e-6), then for all but the last block
/// `downsamplers.0`: zero padding (0, 1, 0, 1) and a 3x3 stride-2 convolution without padding.
final class DownEncoderBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let downsamplers: ModuleList<Downsample2D>?

    init(in inC: Int, out outC: Int, layers: Int, groups: Int, addDownsample: Bool, generator g: inout RandomGenerator) {
        resnets = ModuleList((0..<layers).map { j in
            ResnetBlock2D(in: j == 0 ? inC : outC, out: outC, tembChannels: nil, groups: groups, eps: 1e-6, generator: &g)
        })
        downsamplers = addDownsample ? ModuleList([Downsample2D(channels: outC, padding: 0, generator: &g)]) : nil
        super.init()
        child("resnets", resnets)
        if let d = downsamplers { child("downsamplers", d) }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for r in resnets.items { h = r(h, nil) }
        if let d = downsamplers { h = d[0](h.padded([(0, 0), (0, 0), (0, 1), (0, 1)])) }
        return h
    }
}

/// UpDecoderBlock2D: resnets without time embedding (eps 1e-6), then an optional `upsamplers.0`.
final class UpDecoderBlock: Module {
    let resnets: ModuleList<ResnetBlock2D>
    let upsamplers: ModuleList<Upsample2D>?

    init(in inC: Int, out outC: Int, layers: Int, groups: Int, addUpsample: Bool, generator g: inout RandomGenerator) {
        resnets = ModuleList((0..<layers).map { j in
            ResnetBlock2D(in: j == 0 ? inC : outC, out: outC, tembChannels: nil, groups: groups, eps: 1e-6, generator: &g)
        })
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outC, generator: &g)]) : nil
        super.init()
        child("resnets", resnets)
        if let u = upsamplers { child("upsamplers", u) }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for r in resnets.items { h = r(h, nil) }
        if let u = upsamplers { h = u[0](h) }
        return h
    }
}

/// diffusers' VAE `Encoder` (double_z): conv_in, down_blocks, mid_block, conv_norm_out + SiLU,
/// conv_out to 2 * latent channels.
final class VAEEncoder: Module {
    let convIn: Conv2d
    let downBlocks: ModuleList<DownEncoderBlock>
    let midBlock: VAEMidBlock
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ c: AutoencoderKLConfig, generator g: inout RandomGenerator) {
        let ch = c.blockOutChannels
        convIn = Conv2d(c.inChannels, ch[0], kernelSize: 3, padding: 1, generator: &g)
        var blocks: [DownEncoderBlock] = []
        var outC = ch[0]
        for i in 0..<ch.count {
            let inC = outC
            outC = ch[i]
            blocks.append(DownEncoderBlock(in: inC, out: outC, layers: c.layersPerBlock, groups: c.normNumGroups,
                                           addDownsample: i < ch.count - 1, generator: &g))
        }
        downBlocks = ModuleList(blocks)
        midBlock = VAEMidBlock(channels: ch[ch.count - 1], groups: c.normNumGroups, attention: c.midBlockAddAttention, generator: &g)
        convNormOut = GroupNorm(groups: c.normNumGroups, channels: ch[ch.count - 1], eps: 1e-6)
        convOut = Conv2d(ch[ch.count - 1], 2 * c.latentChannels, kernelSize: 3, padding: 1, generator: &g)
        super.init()
        child("conv_in", convIn); child("down_blocks", downBlocks); child("mid_block", midBlock)
        child("conv_norm_out", convNormOut); child("conv_out", convOut)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for b in downBlocks.items { h = b(h) }
        return convOut(convNormOut.withSiLU(midBlock(h)))
    }
}

/// diffusers' VAE `Decoder`: conv_in, mid_block, up_blocks (channels reversed, layers + 1
/// resnets each), conv_norm_out + SiLU, conv_out.
final class VAEDecoder: Module {
    let convIn: Conv2d
    let midBlock: VAEMidBlock
    let upBlocks: ModuleList<UpDecoderBlock>
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ c: AutoencoderKLConfig, generator g: inout RandomGenerator) {
        let ch = c.blockOutChannels, rev = Array(ch.reversed())
        convIn = Conv2d(c.latentChannels, rev[0], kernelSize: 3, padding: 1, generator: &g)
        midBlock = VAEMidBlock(channels: rev[0], groups: c.normNumGroups, attention: c.midBlockAddAttention, generator: &g)
        var blocks: [UpDecoderBlock] = []
        var outC = rev[0]
        for i in 0..<rev.count {
            let prev = outC
            outC = rev[i]
            blocks.append(UpDecoderBlock(in: prev, out: outC, layers: c.layersPerBlock + 1, groups: c.normNumGroups,
                                         addUpsample: i < rev.count - 1, generator: &g))
        }
        upBlocks = ModuleList(blocks)
        convNormOut = GroupNorm(groups: c.normNumGroups, channels: ch[0], eps: 1e-6)
        convOut = Conv2d(ch[0], c.outChannels, kernelSize: 3, padding: 1, generator: &g)
        super.init()
        child("conv_in", convIn); child("mid_block", midBlock); child("up_blocks", upBlocks)
        child("conv_norm_out", convNormOut); child("conv_out", convOut)
    }

    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = midBlock(convIn(z))
        for b in upBlocks.items { h = b(h) }
        return convOut(convNormOut.withSiLU(h))
    }
}
