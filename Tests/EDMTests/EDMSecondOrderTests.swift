import Foundation
import XCTest
import EDM
import NeuralNetworks
import TensorEngine

/// Double backward through the tiny EDM networks (SongUNet DDPM++ and NCSN++, DhariwalUNet, with
/// their preconditionings): Hessian-vector products of a denoising loss with respect to the image
/// against finite differences of gradients.
final class EDMSecondOrderTests: XCTestCase {
    func tinyModel(_ config: EDMConfig, seed: UInt64) -> EDMModel {
        let model = EDMModel(config: config, seed: seed)
        var g = RandomGenerator(seed: seed &+ 1)
        for (key, p) in model.namedParameters() {
            let fanIn = p.rank > 1 ? p.count / p.shape[0] : 1
            if key.contains("norm") && key.hasSuffix("weight") {
                p.assign(Tensor.randn(p.shape, mean: 1, std: 0.2, generator: &g))
            } else {
                p.assign(Tensor.randn(p.shape, std: p.rank > 1 ? 1 / Float(fanIn).squareRoot() : 0.1, generator: &g))
            }
            p.requiresGrad = false
        }
        return model
    }

    func check(_ config: EDMConfig, seed: UInt64, sigma: [Float], labels: [Int]?, line: UInt = #line) throws {
        let model = tinyModel(config, seed: seed)
        var g = RandomGenerator(seed: 31)
        let shape = [sigma.count, config.imgChannels, config.imgResolution, config.imgResolution]
        let x = Tensor.randn(shape, generator: &g)
        x.requiresGrad = true
        let target = Tensor.randn(shape, generator: &g), v = Tensor.randn(shape, generator: &g)
        let classLabels = labels.map { model.oneHot($0) }
        let (err, scale) = try hessianVectorProductAgainstFiniteDifferences(leaves: [x], directions: [v], h: 1e-2) {
            (model(x, sigma: sigma, classLabels: classLabels) - target).square().mean()
        }
        XCTAssertGreaterThan(scale, 1e-4, "vacuous H v", line: line)
        XCTAssertLessThan(err, 2e-2, "max |H v - finite differences| / max |finite differences|", line: line)
    }

    func testSongUNetDDPMpp() throws {
        var c = EDMConfig(precond: .edm, modelType: .songUNet, imgResolution: 8, imgChannels: 1, labelDim: 3)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.attnResolutions = [8]; c.channelMultEmb = 2
        try check(c, seed: 1, sigma: [0.3, 2.0], labels: [0, 2])
    }

    func testSongUNetNCSNpp() throws {
        var c = EDMConfig(precond: .vp, modelType: .songUNet, imgResolution: 8, imgChannels: 1)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.attnResolutions = []; c.channelMultEmb = 2
        c.embeddingType = "fourier"; c.channelMultNoise = 2; c.encoderType = "residual"; c.decoderType = "skip"
        c.resampleFilter = [1, 3, 3, 1]
        try check(c, seed: 2, sigma: [0.5, 1.5], labels: nil)
    }

    func testDhariwalUNet() throws {
        var c = EDMConfig(precond: .ve, modelType: .dhariwalUNet, imgResolution: 8, imgChannels: 1, labelDim: 2)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.channelMultEmb = 2
        try check(c, seed: 3, sigma: [0.2, 3.0], labels: [1, 0])
    }
}
