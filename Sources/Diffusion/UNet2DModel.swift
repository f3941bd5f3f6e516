import Foundation
import NeuralNetworks
import TensorEngine

/// A noise predictor eps_theta(x_t, t, c): what the classifiers and samplers need of a model.
public protocol ConditionalNoisePredictor: AnyObject {
    /// The network output for a batch: `sample` [N, C, H, W], one timestep and one condition per
    /// batch item. Conditions are class ids (as Float) for class-conditional U-Nets.
    func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor
}

/// diffusers' `UNet2DModel` (pixel-space U-Net) with the same module tree, so checkpoint keys
/// are diffusers' keys. Matches `UNet2DModel.forward` for the configurations `UNet2DConfig`
/// accepts (see its doc); dropout is not applied.
public final class UNet2DModel: Module, ConditionalNoisePredictor {
    public let config: UNet2DConfig
    let convIn: Conv2d
    let timeEmbedding: TimestepEmbeddingMLP
    let classEmbedding: Embedding?
    let downBlocks: ModuleList<DownBlock>
    let midBlock: MidBlock?
    let upBlocks: ModuleList<UpBlock>
    let convNormOut: GroupNorm
    let convOut: Conv2d

    /// Builds the network with PyTorch's default initialisation drawn from `seed`.
    public init(config: UNet2DConfig, seed: UInt64 = 0) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        let ch = config.blockOutChannels, tdim = config.timeEmbedDim
        convIn = Conv2d(config.inChannels, ch[0], kernelSize: 3, padding: 1, generator: &g)
        timeEmbedding = TimestepEmbeddingMLP(ch[0], tdim, generator: &g)
        classEmbedding = config.numClassEmbeds.map { Embedding($0, tdim, generator: &g) }
        var downs: [DownBlock] = []
        var outC = ch[0]
        for (i, type) in config.downBlockTypes.enumerated() {
            let inC = outC
            outC = ch[i]
            downs.append(DownBlock(in: inC, out: outC, layers: config.layersPerBlock, attention: type.hasSelfAttention,
                                   addDownsample: i < ch.count - 1, config: config, generator: &g))
        }
        downBlocks = ModuleList(downs)
        midBlock = config.midBlockType == nil ? nil : MidBlock(channels: ch[ch.count - 1], config: config, generator: &g)
        let rev = Array(ch.reversed())
        var ups: [UpBlock] = []
        outC = rev[0]
        for (i, type) in config.upBlockTypes.enumerated() {
            let prev = outC
            outC = rev[i]
            let inC = rev[Swift.min(i + 1, ch.count - 1)]
            ups.append(UpBlock(in: inC, out: outC, prevOut: prev, layers: config.layersPerBlock + 1,
                               attention: type.hasSelfAttention, addUpsample: i < ch.count - 1, config: config, generator: &g))
        }
        upBlocks = ModuleList(ups)
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: ch[0], eps: Float(config.normEps))
        convOut = Conv2d(ch[0], config.outChannels, kernelSize: 3, padding: 1, generator: &g)
        super.init()
        child("conv_in", convIn)
        child("time_embedding", timeEmbedding)
        if let c = classEmbedding { child("class_embedding", c) }
        child("down_blocks", downBlocks)
        if let m = midBlock { child("mid_block", m) }
        child("up_blocks", upBlocks)
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
    }

    /// The forward pass: `sample` [N, in, H, W], `timesteps` one per item (or one for all),
    /// `classLabels` [N] class ids when the model is class-conditional.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], classLabels: Tensor? = nil) -> Tensor {
        let n = sample.shape[0]
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels,
                     "UNet2DModel: sample \(sample.shape), expected [N, \(config.inChannels), H, W]")
        precondition(timesteps.count == n || timesteps.count == 1, "UNet2DModel: \(timesteps.count) timesteps for batch \(n)")
        let ts = timesteps.count == n ? timesteps : Array(repeating: timesteps[0], count: n)
        var x = config.centerInputSample ? sample * 2 - 1 : sample
        var emb = timeEmbedding(timestepEmbedding(ts, dim: config.blockOutChannels[0], flipSinToCos: config.flipSinToCos,
                                                  freqShift: Float(config.freqShift)))
        if let classEmbedding {
            guard let classLabels else { preconditionFailure("UNet2DModel: class_labels are required (num_class_embeds is set)") }
            precondition(classLabels.count == n, "UNet2DModel: \(classLabels.count) class labels for batch \(n)")
            emb = emb + classEmbedding(classLabels.reshaped([n]))
        } else {
            precondition(classLabels == nil, "UNet2DModel: class labels given but the model has no class embedding")
        }
        let temb = emb.silu()
        x = convIn(x)
        var skips = [x]
        for block in downBlocks.items {
            let (h, states) = block(x, temb)
            x = h
            skips += states
        }
        if let midBlock { x = midBlock(x, temb) }
        for block in upBlocks.items { x = block(x, &skips, temb) }
        return convOut(convNormOut.withSiLU(x))
    }

    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        self(sample, timesteps: timesteps, classLabels: conditions)
    }

    /// Multiply-add count of one forward pass for one image (convolutions, linears, attention
    /// products), times 2 for FLOPs; from a shape trace at the config's sample size.
    public var flopsPerImage: Double {
        let size = config.sampleSize ?? [32, 32]
        return UNetFlopCounter.count(config: config, height: size[0], width: size[1])
    }
}
