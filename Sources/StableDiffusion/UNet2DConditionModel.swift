import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// diffusers' `UNet2DConditionModel` (the Stable Diffusion 1.x / 2.x latent U-Net) with the same
/// module tree, so checkpoint keys are diffusers' (`down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight`,
/// ...). Matches `UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states)` for the
/// configurations `UNet2DConditionConfig` accepts: sinusoidal time projection, time embedding MLP,
/// down blocks, cross-attention mid block, up blocks with skip connections, GroupNorm + SiLU +
/// conv_out. Not implemented: attention masks, class / added conditioning, ControlNet residuals,
/// non-power-of-two sizes (`upsample_size`), dropout.
public final class UNet2DConditionModel: Module, ConditionalNoisePredictor {
    public let config: UNet2DConditionConfig
    let convIn: Conv2d
    let timeEmbedding: TimestepEmbeddingMLP
    let downBlocks: ModuleList<ConditionDownBlock>
    let midBlock: ConditionMidBlock
    let upBlocks: ModuleList<ConditionUpBlock>
    let convNormOut: GroupNorm
    let convOut: Conv2d

    /// Builds the network with PyTorch's default initialisation drawn from `seed` (for tests; load
    /// real weights). SD-sized configs allocate about 3.4 GB of Float32.
    public init(config: UNet2DConditionConfig, seed: UInt64 = 0) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        let ch = config.blockOutChannels, tdim = config.timeEmbedDim
        convIn = Conv2d(config.inChannels, ch[0], kernelSize: 3, padding: 1, generator: &g)
        timeEmbedding = TimestepEmbeddingMLP(ch[0], tdim, generator: &g)
        var downs: [ConditionDownBlock] = []
        var outC = ch[0]
        for i in 0..<ch.count {
            let inC = outC
            outC = ch[i]
            downs.append(ConditionDownBlock(in: inC, out: outC, index: i, config: config, generator: &g))
        }
        downBlocks = ModuleList(downs)
        midBlock = ConditionMidBlock(config: config, generator: &g)
        let rev = Array(ch.reversed())
        var ups: [ConditionUpBlock] = []
        outC = rev[0]
        for i in 0..<ch.count {
            let prev = outC
            outC = rev[i]
            let inC = rev[Swift.min(i + 1, ch.count - 1)]
            ups.append(ConditionUpBlock(in: inC, out: outC, prevOut: prev, index: i, config: config, generator: &g))
        }
        upBlocks = ModuleList(ups)
        convNormOut = GroupNorm(groups: config.normNumGroups, channels: ch[0], eps: Float(config.normEps))
        convOut = Conv2d(ch[0], config.outChannels, kernelSize: 3, padding: 1, generator: &g)
        super.init()
        child("conv_in", convIn)
        child("time_embedding", timeEmbedding)
        child("down_blocks", downBlocks)
        child("up_blocks", upBlocks)
        child("mid_block", midBlock)
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
    }

    /// The noise prediction: `sample` [N, in, H, W] (H and W divisible by 2^(blocks-1)),
    /// `timesteps` one per item (or one for all), `encoderHiddenStates` [N, S, cross_attention_dim]
    /// (the text encoder's last hidden state; S is 77 for SD) -> [N, out, H, W].
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) -> Tensor {
        let n = sample.shape[0]
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels,
                     "UNet2DConditionModel: sample \(sample.shape), expected [N, \(config.inChannels), H, W]")
        precondition(timesteps.count == n || timesteps.count == 1, "UNet2DConditionModel: \(timesteps.count) timesteps for batch \(n)")
        precondition(encoderHiddenStates.rank == 3 && encoderHiddenStates.shape[0] == n,
                     "UNet2DConditionModel: encoder hidden states \(encoderHiddenStates.shape), expected [\(n), S, D]")
        let factor = 1 << (config.blockOutChannels.count - 1)
        precondition(sample.shape[2] % factor == 0 && sample.shape[3] % factor == 0,
                     "UNet2DConditionModel: sample size \(sample.shape[2])x\(sample.shape[3]) is not divisible by \(factor)")
        let ts = timesteps.count == n ? timesteps : Array(repeating: timesteps[0], count: n)
        let context = encoderHiddenStates
        var x = config.centerInputSample ? sample * 2 - 1 : sample
        let emb = timeEmbedding(timestepEmbedding(ts, dim: config.blockOutChannels[0], flipSinToCos: config.flipSinToCos,
                                                  freqShift: Float(config.freqShift)))
        let temb = emb.silu()
        x = convIn(x)
        var skips = [x]
        for block in downBlocks.items {
            let (h, states) = block(x, temb, context)
            x = h
            skips += states
        }
        x = midBlock(x, temb, context)
        for block in upBlocks.items { x = block(x, &skips, temb, context) }
        return convOut(convNormOut.withSiLU(x))
    }

    /// `conditions` are the encoder hidden states [N, S, cross_attention_dim] (required).
    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        guard let conditions else { preconditionFailure("UNet2DConditionModel: encoder hidden states are required") }
        return self(sample, timesteps: timesteps, encoderHiddenStates: conditions)
    }

    /// Loads a diffusers `UNet2DConditionModel` folder (or a pipeline folder with `unet/`): its
    /// config.json and diffusion_pytorch_model.safetensors, strictly (missing, unused or misshapen
    /// tensors are named).
    /// `weightStorage` keeps Linear, Conv2d and Embedding weights as 16-bit (`WeightStorage`).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> UNet2DConditionModel {
        try DiffusersFolder.loadUNet(folder, className: "UNet2DConditionModel", weightStorage: weightStorage,
                                     config: UNet2DConditionConfig.load, build: { UNet2DConditionModel(config: $0) })
    }
}
