import EDM
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// D(x; sigma, y) differentiated with respect to x against central finite differences (in
/// float32, of L = sum(D * R) with a fixed random R), on tiny networks with every parameter
/// redrawn at random; and the calling conventions of `EDMModel`.
final class EDMGradientTests: XCTestCase {
    /// A tiny model with all parameters redrawn N(0, 1/fan_in) (norms 1 + N(0, 0.2^2)), so no
    /// layer is zero-initialised.
    func tinyModel(_ config: EDMConfig, seed: UInt64) -> EDMModel {
        let model = EDMModel(config: config, seed: seed)
        var g = RandomGenerator(seed: seed &+ 1)
        for (key, p) in model.namedParameters() {
            let fanIn = p.rank > 1 ? p.count / p.shape[0] : 1
            let values: Tensor
            if key.contains("norm") {
                values = key.hasSuffix("weight") ? Tensor.randn(p.shape, mean: 1, std: 0.2, generator: &g) : Tensor.randn(p.shape, std: 0.2, generator: &g)
            } else {
                values = p.rank > 1 ? Tensor.randn(p.shape, std: 1 / Float(fanIn).squareRoot(), generator: &g) : Tensor.randn(p.shape, std: 0.1, generator: &g)
            }
            p.assign(values)
        }
        return model
    }

    func checkInputGradient(_ model: EDMModel, sigma: [Float], labels: Tensor?, line: UInt = #line) {
        let c = model.config
        var g = RandomGenerator(seed: 99)
        let x0 = Tensor.randn([sigma.count, c.imgChannels, c.imgResolution, c.imgResolution], generator: &g)
        let r = Tensor.randn(x0.shape, generator: &g)
        func loss(_ values: [Float]) -> Double {
            let out = Autograd.noGrad { model(Tensor(shape: x0.shape, values), sigma: sigma, classLabels: labels) }
            return zip(out.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let x = Tensor(shape: x0.shape, x0.scalars, requiresGrad: true)
        (model(x, sigma: sigma, classLabels: labels) * r).sum().backward()
        let analytic = x.grad!.scalars
        let base = x0.scalars, delta: Float = 1e-2
        var numeric = [Float](repeating: 0, count: base.count)
        for i in 0..<base.count {
            var plus = base, minus = base
            plus[i] += delta; minus[i] -= delta
            numeric[i] = Float((loss(plus) - loss(minus)) / (2 * Double(delta)))
        }
        let scale = numeric.map { Swift.abs($0) }.max()!
        XCTAssertGreaterThan(scale, 1e-3, "vacuous gradient", line: line)
        var worst = 0.0
        for i in 0..<base.count { worst = Swift.max(worst, Double(Swift.abs(analytic[i] - numeric[i]) / scale)) }
        XCTAssertLessThan(worst, 2e-2, "max |analytic - numeric| / max |numeric|", line: line)
    }

    func testDDPMppEDMPrecondInputGradientByFiniteDifferences() {
        var c = EDMConfig(precond: .edm, modelType: .songUNet, imgResolution: 8, imgChannels: 1, labelDim: 3)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.attnResolutions = [8]; c.channelMultEmb = 2
        let model = tinyModel(c, seed: 1)
        checkInputGradient(model, sigma: [0.3, 2.0], labels: model.oneHot([0, 2]))
    }

    func testNCSNppVPPrecondInputGradientByFiniteDifferences() {
        var c = EDMConfig(precond: .vp, modelType: .songUNet, imgResolution: 8, imgChannels: 1)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.attnResolutions = []; c.channelMultEmb = 2
        c.embeddingType = "fourier"; c.channelMultNoise = 2; c.encoderType = "residual"; c.decoderType = "skip"
        c.resampleFilter = [1, 3, 3, 1]
        checkInputGradient(tinyModel(c, seed: 2), sigma: [0.5, 1.5], labels: nil)
    }

    func testDhariwalVEPrecondInputGradientByFiniteDifferences() {
        var c = EDMConfig(precond: .ve, modelType: .dhariwalUNet, imgResolution: 8, imgChannels: 1, labelDim: 2)
        c.modelChannels = 4; c.channelMult = [1, 2]; c.numBlocks = 1; c.channelMultEmb = 2
        let model = tinyModel(c, seed: 3)
        checkInputGradient(model, sigma: [0.2, 3.0], labels: model.oneHot([1, 0]))
    }

    func testClassIdsOneSigmaAndTheUnconditionalCall() throws {
        let model = try EDMModel.load(from: fixtureURL("ddpmpp_edm"))
        var g = RandomGenerator(seed: 5)
        let x = Tensor.randn([2, 3, 16, 16], generator: &g)
        let byIds = Autograd.noGrad { model(x, sigma: 0.7, classes: [1, 3]) }
        let byVectors = Autograd.noGrad { model(x, sigma: [0.7, 0.7], classLabels: model.oneHot([1, 3])) }
        XCTAssertEqual(byIds.scalars, byVectors.scalars)
        let uncond = Autograd.noGrad { model(x, sigma: 0.7, classes: nil) }
        let zeros = Autograd.noGrad { model(x, sigma: [0.7], classLabels: Tensor.zeros([2, 4])) }
        XCTAssertLessThan(maxRelativeError(uncond, zeros), 1e-6)
        XCTAssertGreaterThan(maxRelativeError(byIds, uncond), 1e-3, "the label must matter")
    }

    func testDropoutOnlyInATrainingPassAndSeeded() throws {
        let model = try EDMModel.load(from: fixtureURL("ddpmpp_edm"))  // dropout 0.13
        var g = RandomGenerator(seed: 6)
        let x = Tensor.randn([2, 3, 16, 16], generator: &g)
        let labels = model.oneHot([0, 1])
        let eval = Autograd.noGrad { model(x, sigma: [1, 1], classLabels: labels) }
        let a = Autograd.noGrad { model(x, sigma: [1, 1], classLabels: labels, dropout: EDMDropout(generator: RandomGenerator(seed: 9))) }
        let b = Autograd.noGrad { model(x, sigma: [1, 1], classLabels: labels, dropout: EDMDropout(generator: RandomGenerator(seed: 9))) }
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertGreaterThan(maxRelativeError(a, eval), 1e-4)
    }

    func testHalfPrecisionWeightsStayClose() throws {
        let full = try EDMModel.load(from: fixtureURL("adm_edm"))
        let half = try EDMModel.load(from: fixtureURL("adm_edm"), weightStorage: .bfloat16)
        XCTAssertTrue(half.hasHalfPrecisionWeights)
        var g = RandomGenerator(seed: 7)
        let x = Tensor.randn([1, 3, 8, 8], generator: &g)
        let a = Autograd.noGrad { full(x, sigma: 0.5, classes: [2]) }, b = Autograd.noGrad { half(x, sigma: 0.5, classes: [2]) }
        XCTAssertLessThan(maxRelativeError(b, a), 3e-2)
    }
}
