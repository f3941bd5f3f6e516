import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// diffusers' `DiTTransformer2DModel` (Peebles & Xie's DiT, the class-conditional latent
/// transformer) with the same module tree, so checkpoint keys are diffusers' keys
/// (`pos_embed.proj.weight`, `transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight`,
/// `transformer_blocks.0.attn1.to_q.weight`, `proj_out_2.bias`, ...).
///
/// Matches `DiTTransformer2DModel.forward(sample, timestep, class_labels).sample` in eval mode for
/// the configs `DiTTransformer2DConfig` accepts: patch embedding plus 2-D sinusoidal positions,
/// adaLN-Zero blocks (each block with its own timestep + label embedding), the final layer
/// (LayerNorm without affine, eps 1e-6, shifted and scaled by `proj_out_1` of SiLU of the FIRST
/// block's conditioning, then `proj_out_2`) and unpatchify. With learned sigma
/// (out_channels = 2 x in_channels) the output's first in_channels channels are the noise
/// prediction and the rest the variance values; `predict` returns the noise half, as diffusers'
/// `DiTPipeline` and the public Diffusion Classifier code use it.
///
/// Differs: no dropout and no label dropout (inference; the null class is used only when asked
/// for, by id `config.classCount`); square inputs only (diffusers' unpatchify assumes a square
/// token grid too); an input of another size than `sample_size` gets a rebuilt positional table,
/// as in diffusers.
public final class DiTTransformer2DModel: Module, ConditionalNoisePredictor {
    public let config: DiTTransformer2DConfig
    let posEmbed: PatchEmbed
    let blocks: ModuleList<DiTBlock>
    let projOut1: Linear
    let projOut2: Linear

    /// Builds the network with PyTorch's default initialisation drawn from `seed` (for tests; load
    /// real weights). DiT-XL/2 allocates about 2.7 GB of Float32.
    public init(config: DiTTransformer2DConfig, seed: UInt64 = 0) {
        self.config = config
        var g = RandomGenerator(seed: seed)
        let d = config.innerDim, p = config.patchSize
        posEmbed = PatchEmbed(sampleSize: config.sampleSize, patchSize: p, inChannels: config.inChannels, embedDim: d, generator: &g)
        blocks = ModuleList((0..<config.numLayers).map { _ in DiTBlock(config: config, generator: &g) })
        projOut1 = Linear(d, 2 * d, generator: &g)
        projOut2 = Linear(d, p * p * config.outputChannels, generator: &g)
        super.init()
        child("pos_embed", posEmbed)
        child("transformer_blocks", blocks)
        child("proj_out_1", projOut1)
        child("proj_out_2", projOut2)
    }

    /// The null class's id (the label table's last row), e.g. 1000 for DiT-XL/2.
    public var nullClass: Int { config.classCount }

    /// The full output: `sample` [N, in_channels, S, S] (S a multiple of patch_size), `timesteps`
    /// one per item (or one for all), `classLabels` [N] class ids as Float (0..<classCount, or
    /// `nullClass`) -> [N, out_channels, S, S].
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], classLabels: Tensor) -> Tensor {
        let n = sample.shape[0], p = config.patchSize
        precondition(sample.rank == 4 && sample.shape[1] == config.inChannels,
                     "DiTTransformer2DModel: sample \(sample.shape), expected [N, \(config.inChannels), H, W]")
        precondition(sample.shape[2] == sample.shape[3] && sample.shape[2] % p == 0 && sample.shape[2] >= p,
                     "DiTTransformer2DModel: sample size \(sample.shape[2])x\(sample.shape[3]) must be square and a multiple of patch_size \(p)")
        precondition(timesteps.count == n || timesteps.count == 1, "DiTTransformer2DModel: \(timesteps.count) timesteps for batch \(n)")
        precondition(classLabels.count == n, "DiTTransformer2DModel: \(classLabels.count) class labels for batch \(n)")
        let labels = classLabels.reshaped([n])
        for id in labels.scalars {
            precondition(id >= 0 && id <= Float(nullClass) && id == id.rounded(),
                         "DiTTransformer2DModel: class label \(id) outside 0...\(nullClass) (\(nullClass) is the null class)")
        }
        let ts = timesteps.count == n ? timesteps : Array(repeating: timesteps[0], count: n)
        let projection = TimestepLabelEmbedding.projection(ts)
        var h = posEmbed(sample)
        var firstConditioning: Tensor?
        for block in blocks.items {
            let conditioning = block.norm1.emb(projection: projection, labels: labels)
            if firstConditioning == nil { firstConditioning = conditioning }
            h = block(h, conditioning: conditioning)
        }
        let d = config.innerDim
        let shiftScale = projOut1(firstConditioning!.silu()).chunked(2, axis: 1).map { $0.reshaped([n, 1, d]) }
        h = projOut2(modulatedLayerNorm(h, eps: 1e-6, shift: shiftScale[0], scale: shiftScale[1]))
        return unpatchify(h)
    }

    /// Tokens [N, g*g, p*p*C] -> [N, C, g*p, g*p] (diffusers' einsum "nhwpqc->nchpwq").
    func unpatchify(_ tokens: Tensor) -> Tensor {
        let n = tokens.shape[0], g = Int(Double(tokens.shape[1]).squareRoot()), p = config.patchSize, c = config.outputChannels
        precondition(g * g == tokens.shape[1], "DiTTransformer2DModel: \(tokens.shape[1]) tokens are not a square grid")
        return tokens.reshaped([n, g, g, p, p, c]).permuted([0, 5, 1, 3, 2, 4]).reshaped([n, c, g * p, g * p])
    }

    /// The noise prediction: the first in_channels channels of the output when the model learns
    /// sigma, else the output. Class ids in `conditions` ([N], as Float) are required.
    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        guard let conditions else { preconditionFailure("DiTTransformer2DModel: class labels are required") }
        return noisePrediction(self(sample, timesteps: timesteps, classLabels: conditions))
    }

    /// The noise half of an output (all of it without learned sigma). Requires out_channels to be
    /// in_channels or 2 x in_channels (what `DiTPipeline` folders hold).
    public func noisePrediction(_ output: Tensor) -> Tensor {
        if config.learnsSigma { return Self.splitLearnedSigma(output, channels: config.inChannels).noise }
        precondition(config.outputChannels == config.inChannels,
                     "DiTTransformer2DModel: out_channels \(config.outputChannels) is neither in_channels \(config.inChannels) nor twice it")
        return output
    }

    /// [N, 2C, H, W] -> the noise prediction [N, C, H, W] and the variance values [N, C, H, W]
    /// (`torch.split(output, C, dim=1)`).
    public static func splitLearnedSigma(_ output: Tensor, channels: Int) -> (noise: Tensor, variance: Tensor) {
        precondition(output.rank == 4 && output.shape[1] == 2 * channels,
                     "splitLearnedSigma: output \(output.shape) does not have 2 x \(channels) channels")
        return (output.sliced(axis: 1, 0..<channels), output.sliced(axis: 1, channels..<(2 * channels)))
    }

    /// Multiply-adds of one forward pass for one image at the config's sample size, times 2 for
    /// FLOPs: the patch convolution, every linear over the tokens and the two attention products
    /// (the per-image conditioning MLPs are included; elementwise work is not).
    public var flopsPerImage: Double {
        let d = Double(config.innerDim), l = Double(config.gridSize * config.gridSize), p = Double(config.patchSize)
        let patch = l * Double(config.inChannels) * p * p * d
        let perBlock = l * (4 * d * d + 8 * d * d) + 2 * l * l * d + (256 * d + d * d + 6 * d * d)
        let final = 2 * d * d + l * d * p * p * Double(config.outputChannels)
        return 2 * (patch + Double(config.numLayers) * perBlock + final)
    }

    /// Loads a diffusers `DiTTransformer2DModel` folder (or a `DiTPipeline` folder with
    /// `transformer/`): config.json and diffusion_pytorch_model.safetensors, strictly (missing,
    /// unused or misshapen tensors are named). `weightStorage` keeps Linear, Conv2d and Embedding
    /// weights as 16-bit (`WeightStorage`; computation stays Float32).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> DiTTransformer2DModel {
        let fm = FileManager.default
        let dir = fm.fileExists(atPath: folder.appendingPathComponent(DiffusersFolder.configName).path)
            ? folder : folder.appendingPathComponent("transformer")
        let configURL = dir.appendingPathComponent(DiffusersFolder.configName)
        guard fm.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no \(DiffusersFolder.configName) here or in transformer/: not a diffusers \(DiTTransformer2DConfig.className) folder")
        }
        let config = try DiTTransformer2DConfig.load(configURL)
        let weightsURL = try DiffusersFolder.weightsURL(in: dir, name: DiffusersFolder.weightsName)
        guard fm.fileExists(atPath: weightsURL.path) else {
            let bin = fm.fileExists(atPath: dir.appendingPathComponent("diffusion_pytorch_model.bin").path)
            throw ConfigError(file: weightsURL.path, "missing" + (bin ? " (only a PyTorch .bin checkpoint is here, which is not read: re-save it with diffusers' save_pretrained(safe_serialization=True))" : ""))
        }
        let model = WeightStorage.$current.withValue(weightStorage) { DiTTransformer2DModel(config: config) }
        try model.load(from: try SafetensorsFile(url: weightsURL))
        MemoryStatistics.releaseIdleBuffers()  // the random initial weights
        return model
    }

    /// Writes config.json and diffusion_pytorch_model.safetensors (F32) into `folder`, which
    /// diffusers' `DiTTransformer2DModel.from_pretrained` loads.
    public func save(to folder: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try config.write(to: folder.appendingPathComponent(DiffusersFolder.configName))
        var meta = metadata
        meta["format"] = "pt"
        try Safetensors.write(stateDict(), metadata: meta, to: folder.appendingPathComponent(DiffusersFolder.weightsName))
    }
}
