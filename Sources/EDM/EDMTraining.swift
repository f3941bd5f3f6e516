import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// The training losses of EDM's `training/loss.py`, one per preconditioning:
///
///     EDMLoss: ln s ~ N(P_mean, P_std^2),                   w(s) = (s^2 + sd^2) / (s sd)^2
///     VPLoss:  s = sigma(1 + u (epsilon_t - 1)), u ~ U[0,1], w(s) = 1 / s^2
///     VELoss:  s = sigma_min (sigma_max / sigma_min)^u,     w(s) = 1 / s^2
///     loss = w(s) * (D(y + s n; s, labels) - y)^2,  n ~ N(0, I)
///
/// Differs: the loss is the mean over every element, where EDM's training loop sums over the
/// pixels and divides by the batch (a constant factor C H W, which Adam's update does not see
/// except through its epsilon and our gradient clipping). No augmentation pipeline (EDM's
/// `augment_pipe`); the network's `label_dropout` zeroes the label vector, as EDM's SongUNet does.
public struct EDMLossSettings: Equatable, Sendable {
    public var pMean: Float = -1.2
    public var pStd: Float = 1.2
    public init(pMean: Float = -1.2, pStd: Float = 1.2) { self.pMean = pMean; self.pStd = pStd }
}

/// The EDM objective of `DiffusionTrainer`: a class-conditional `EDMModel` (label_dim classes,
/// one-hot labels; the unconditional case is the zero label vector that label dropout trains)
/// trained with its preconditioning's loss (`EDMLossSettings`), dropout active.
public final class EDMObjective: TrainingObjective {
    public let model: EDMModel
    public let lossSettings: EDMLossSettings
    public init(model: EDMModel, loss: EDMLossSettings = EDMLossSettings()) {
        self.model = model
        lossSettings = loss
    }

    public var module: Module { model }
    public var modelName: String { "EDMPrecond(\(model.config.modelType.rawValue))" }

    /// Per item: the noise level of the loss and its weight, from one uniform and one normal draw
    /// per item (the preconditioning picks which it uses).
    public func noiseLevels(uniforms: [Float], normals: [Float]) -> (sigma: [Float], weight: [Float]) {
        switch model.preconditioning {
        case .edm(let p):
            let sd = Float(p.sigmaData)
            let sigma = normals.map { Foundation.exp($0 * lossSettings.pStd + lossSettings.pMean) }
            return (sigma, sigma.map { ($0 * $0 + sd * sd) / (($0 * sd) * ($0 * sd)) })
        case .vp(let p):
            let sigma = uniforms.map { p.sigma(1 + $0 * (Float(p.epsilonT) - 1)) }
            return (sigma, sigma.map { 1 / ($0 * $0) })
        case .ve(let p):
            let sigma = uniforms.map { Float(p.sigmaMin) * Foundation.pow(Float(p.sigmaMax / p.sigmaMin), $0) }
            return (sigma, sigma.map { 1 / ($0 * $0) })
        }
    }

    /// The loss for given draws: mean of w(s) (D(y + s n; s, labels) - y)^2 over every element.
    /// `dropout` nil: the network as in eval mode (what the parity fixture computes).
    public func loss(images y: Tensor, labels: [Int], sigma: [Float], weight: [Float], noise: Tensor,
                     dropout: EDMDropout?) -> Tensor {
        let n = y.shape[0]
        func column(_ v: [Float]) -> Tensor { Tensor(shape: [n, 1, 1, 1], v) }
        let classLabels = model.labelDim > 0 ? model.oneHot(labels) : nil
        let d = model(y + column(sigma) * noise, sigma: sigma, classLabels: classLabels, dropout: dropout)
        return (column(weight) * (d - y).square()).mean()
    }

    public func loss(images y: Tensor, labels: [Float], options: TrainingOptions, generator g: inout RandomGenerator) -> Tensor {
        let n = y.shape[0]
        let uniforms = g.uniforms(count: n)
        let normals = (0..<n).map { _ in g.nextNormal() }
        let noise = Tensor.randn(y.shape, generator: &g)
        let (sigma, weight) = noiseLevels(uniforms: uniforms, normals: normals)
        // Dropout and label dropout draw from their own stream of this step's generator.
        let dropout = EDMDropout(generator: RandomGenerator(seed: g.nextUInt64(), stream: 0x44524F50))
        return loss(images: y, labels: labels.map { Int($0) }, sigma: sigma, weight: weight, noise: noise, dropout: dropout)
    }

    /// An EDM model folder (config.json, model.safetensors).
    public func export(to dir: URL, metadata: [String: String]) throws {
        try model.save(to: dir, metadata: metadata)
    }

    public func initialParameters(from folder: URL) throws -> [String: Tensor] {
        let source = try EDMModel.load(from: folder)
        guard source.config == model.config else {
            throw TrainingError("\(folder.appendingPathComponent(EDMModel.configName).path): its EDM config differs from the one being trained; train with \(Setting.unetConfig) set to it")
        }
        return source.stateDict()
    }
}

extension EDMConfig {
    /// A small class-conditional DDPM++-style SongUNet in EDMPrecond for 28x28 grey images
    /// (Fashion-MNIST): 32 channels at 28x28, 64 at 14x14 and 7x7, two blocks per level,
    /// attention at 14x14 (and SongUNet's 7x7 decoder input), positional embedding, [1, 1]
    /// resampling, no dropout (short CPU runs), label dropout 0.1 for the unconditional case.
    public static func small(imageSize: Int, channels: Int, classes: Int, precond: Precond = .edm) -> EDMConfig {
        var c = EDMConfig(precond: precond, modelType: .songUNet, imgResolution: imageSize, imgChannels: channels, labelDim: classes)
        c.modelChannels = 32
        c.channelMult = [1, 2, 2]
        c.channelMultEmb = 4
        c.numBlocks = 2
        c.attnResolutions = imageSize % 2 == 0 ? [imageSize / 2] : []
        c.dropout = 0
        c.labelDropout = 0.1
        c.embeddingType = "positional"; c.channelMultNoise = 1
        c.encoderType = "standard"; c.decoderType = "standard"
        c.resampleFilter = [1, 1]
        return c
    }
}
