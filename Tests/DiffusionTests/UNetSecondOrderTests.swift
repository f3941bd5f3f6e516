import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Double backward through a small random class-conditional U-Net: Hessian-vector products of
/// the denoising loss (with respect to the input image and to parameters) against finite
/// differences of gradients.
final class UNetSecondOrderTests: XCTestCase {
    func tinyModel() -> UNet2DModel {
        let model = UNet2DModel(config: .tiny(classes: 3), seed: 7)
        // Redraw every parameter (diffusers zero-initialises some output layers).
        var g = RandomGenerator(seed: 8)
        for (key, p) in model.namedParameters() {
            let fanIn = p.rank > 1 ? p.count / p.shape[0] : 1
            if key.contains("norm") && key.hasSuffix("weight") {
                p.assign(Tensor.randn(p.shape, mean: 1, std: 0.2, generator: &g))
            } else {
                p.assign(Tensor.randn(p.shape, std: p.rank > 1 ? 1 / Float(fanIn).squareRoot() : 0.1, generator: &g))
            }
        }
        return model
    }

    func testHessianVectorProductOfTheDenoisingLoss() throws {
        let model = tinyModel()
        let schedule = NoiseSchedule(SchedulerConfig(numTrainTimesteps: 100, predictionType: "epsilon"))
        var g = RandomGenerator(seed: 21)
        let x = Tensor.uniform([2, 1, 8, 8], low: 0.1, high: 0.9, generator: &g)
        x.requiresGrad = true
        let eps = Tensor.randn(x.shape, generator: &g)
        let v = Tensor.randn(x.shape, generator: &g)
        func loss() -> Tensor {
            let xt = schedule.addNoise(x * 2 - 1, noise: eps, timesteps: [30, 60])
            let out = model.predict(xt, timesteps: [30, 60], conditions: Tensor(shape: [2], [1, 3]))
            return (out - eps).square().mean()
        }
        // With respect to the image (parameters frozen).
        for p in model.parameters { p.requiresGrad = false }
        // The loss is strongly curved in x: the central difference's O(h^2) error is 5% at h = 1e-2,
        // 0.4% at 3e-3, 0.04% at 1e-3 (on both backends), so h is small here.
        let (errX, scaleX) = try hessianVectorProductAgainstFiniteDifferences(leaves: [x], directions: [v], h: 1e-3, loss)
        XCTAssertGreaterThan(scaleX, 1e-4, "vacuous H v")
        XCTAssertLessThan(errX, 5e-3, "max |H v - finite differences| / max |finite differences| (input)")
        // With respect to a convolution, a group norm and an attention projection, jointly.
        for p in model.parameters { p.requiresGrad = true }
        x.requiresGrad = false
        let named = model.namedParameters()
        let picked = named.filter { $0.key.hasSuffix("conv_in.weight") || $0.key.hasSuffix("down_blocks.1.attentions.0.to_q.weight")
            || $0.key.hasSuffix("mid_block.resnets.0.norm1.weight") }.map(\.tensor)
        XCTAssertEqual(picked.count, 3, "\(named.map(\.key).filter { $0.contains("to_q") || $0.contains("conv_in") })")
        let directions = picked.enumerated().map { Tensor.randn($0.element.shape, std: 0.3, generator: &g) }
        let (errP, scaleP) = try hessianVectorProductAgainstFiniteDifferences(leaves: picked, directions: directions, h: 1e-2, loss)
        XCTAssertGreaterThan(scaleP, 1e-4, "vacuous H v")
        XCTAssertLessThan(errP, 2e-2, "max |H v - finite differences| / max |finite differences| (parameters)")
    }
}
