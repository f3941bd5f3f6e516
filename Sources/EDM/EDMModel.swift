import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// An EDM denoiser: one of EDM's preconditionings (`EDMPrecond`, `VPPrecond`, `VEPrecond`) around
/// its network (`SongUNet` or `DhariwalUNet`, the child `model`), so the checkpoint keys are
/// exactly the precond module's `state_dict()` keys (`model.map_noise.freqs`,
/// `model.enc.32x32_conv.weight`, ...; RDC's `edm_cifar_cond.pt` has the same).
///
///     D(x; s, y) = c_skip(s) x + c_out(s) F(c_in(s) x; c_noise(s), y)
///
/// Matches EDM's precond `forward` in float32 (eval mode: no dropout). Class labels are
/// [N, label_dim] vectors (one-hot for a class; `oneHot(_:)`); without labels a conditional model
/// gets a zero label vector, as EDM feeds with `class_labels=None` (the unconditional case).
/// Differs: labels given to a model with label_dim 0 stop with an error (EDM drops them), and
/// `use_fp16` has no effect (EDM uses float16 on CUDA only).
/// Differentiable with respect to `x` (and the parameters); sigma and the labels are constants.
public final class EDMModel: Module {
    public let config: EDMConfig
    public let preconditioning: Preconditioning
    public let network: any EDMNetwork

    public static let configName = "config.json"
    public static let weightsName = "model.safetensors"

    /// Builds the network with EDM's initialisation drawn from `seed` (our generator, so not
    /// EDM's values). `config` must pass `validate` (as `load` ensures).
    public init(config: EDMConfig, seed: UInt64 = 0) {
        do { try config.validate(file: "EDMModel(config:)") } catch { preconditionFailure("\(error)") }
        self.config = config
        preconditioning = config.preconditioning
        switch config.modelType {
        case .songUNet:
            network = SongUNet(imgResolution: config.imgResolution, inChannels: config.imgChannels, outChannels: config.imgChannels,
                               labelDim: config.labelDim, augmentDim: config.augmentDim, options: config.songOptions, seed: seed)
        case .dhariwalUNet:
            network = DhariwalUNet(imgResolution: config.imgResolution, inChannels: config.imgChannels, outChannels: config.imgChannels,
                                   labelDim: config.labelDim, augmentDim: config.augmentDim, options: config.dhariwalOptions, seed: seed)
        }
        super.init()
        child("model", network)
    }

    public var labelDim: Int { config.labelDim }

    /// [N, label_dim] one-hot rows for class ids.
    public func oneHot(_ classes: [Int]) -> Tensor {
        precondition(labelDim > 0, "EDMModel.oneHot: the model is unconditional (label_dim 0)")
        var rows = [Float](repeating: 0, count: classes.count * labelDim)
        for (i, c) in classes.enumerated() {
            precondition(c >= 0 && c < labelDim, "EDMModel.oneHot: class \(c) outside 0..<\(labelDim)")
            rows[i * labelDim + c] = 1
        }
        return Tensor(shape: [classes.count, labelDim], rows)
    }

    /// D(x; sigma, class_labels): `x` [N, C, res, res]; `sigma` one per item or one for all;
    /// `classLabels` [N or 1, label_dim] or nil (zero vector); `augmentLabels` [N, augment_dim] or
    /// nil (the augmentation embedding is then skipped, which equals zeros: it has no bias).
    /// With `dropout`, a training pass (dropout and label dropout drawn from its generator).
    public func callAsFunction(_ x: Tensor, sigma: [Float], classLabels: Tensor? = nil, augmentLabels: Tensor? = nil,
                               dropout: EDMDropout? = nil) -> Tensor {
        let n = x.shape[0]
        precondition(x.rank == 4 && x.shape[1] == config.imgChannels,
                     "EDMModel: input \(x.shape), expected [N, \(config.imgChannels), H, W]")
        precondition(sigma.count == n || sigma.count == 1, "EDMModel: \(sigma.count) sigmas for batch \(n)")
        let sigmas = sigma.count == n ? sigma : Array(repeating: sigma[0], count: n)
        var labels: Tensor? = nil
        if labelDim > 0 {
            labels = classLabels ?? Tensor.zeros([1, labelDim])
        } else {
            precondition(classLabels == nil, "EDMModel: class labels given but the model is unconditional (label_dim 0)")
        }
        let c = preconditioning.coefficients(sigmas)
        func column(_ v: [Float]) -> Tensor { Tensor(shape: [n, 1, 1, 1], v) }
        let cIn = c.cIn.allSatisfy { $0 == 1 } ? x : column(c.cIn) * x
        let f = network(cIn, noiseLabels: c.cNoise, classLabels: labels, augmentLabels: augmentLabels, dropout: dropout)
        let skip = c.cSkip.allSatisfy { $0 == 1 } ? x : column(c.cSkip) * x
        return skip + column(c.cOut) * f
    }

    /// D for one sigma and class ids (nil: unconditional).
    public func callAsFunction(_ x: Tensor, sigma: Float, classes: [Int]?) -> Tensor {
        self(x, sigma: [sigma], classLabels: classes.map { oneHot($0) })
    }

    // MARK: - Weights

    /// Loads parameters and buffers from a safetensors file by key, strictly: a missing, unused
    /// or misshapen tensor is an error naming the key and `source` (default: the file's path).
    public func loadWeights(from file: SafetensorsFile, source: String? = nil) throws {
        try loadEDMState(from: file, source: source)
    }

    /// Loads an EDM model folder: `config.json` (validated; errors name the file and field) and
    /// `model.safetensors` (strict, see `loadWeights`). `weightStorage` keeps Linear and Conv2d
    /// weights as 16-bit (`WeightStorage`).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> EDMModel {
        let configURL = folder.appendingPathComponent(configName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no \(configName): not an EDM model folder")
        }
        let config = try EDMConfig.load(configURL)
        let weightsURL = folder.appendingPathComponent(weightsName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw ConfigError(file: folder.path, "no \(weightsName) beside \(configName)")
        }
        let model = WeightStorage.$current.withValue(weightStorage) { EDMModel(config: config) }
        try model.loadWeights(from: try SafetensorsFile(url: weightsURL))
        model.eval()
        MemoryStatistics.releaseIdleBuffers()
        return model
    }

    /// Writes `config.json` and `model.safetensors` (float32, every parameter and buffer) into
    /// `folder`, which `load(from:)` and tools/convert_edm.py's reader take.
    public func save(to folder: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try config.write(to: folder.appendingPathComponent(Self.configName))
        var meta = metadata
        meta["format"] = "pt"
        try Safetensors.write(edmStateDict(), metadata: meta, to: folder.appendingPathComponent(Self.weightsName))
    }
}
