import Foundation
import XCTest
import StableDiffusion
import NeuralNetworks
import TensorEngine

/// Double backward through the Stable Diffusion networks on their random-weight fixtures: the
/// CLIP text encoder (with respect to its token embedding, an attention projection, an MLP layer
/// and the final layer norm) and UNet2DConditionModel (with respect to the latents and the
/// encoder states, through cross-attention): Hessian-vector products against finite differences
/// of gradients.
final class StableDiffusionSecondOrderTests: XCTestCase {
    func testCLIPTextEncoder() throws {
        for name in ["sd1", "sd2"] {
            let model = try CLIPTextModel.load(from: fixtureURL(name))
            let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
            let ids = try io.tensor("input_ids")
            let named = model.namedParameters()
            for (_, p) in named { p.requiresGrad = false }
            let picked = named.filter {
                $0.key.hasSuffix("token_embedding.weight") || $0.key.hasSuffix("layers.0.self_attn.q_proj.weight")
                    || $0.key.hasSuffix("layers.0.mlp.fc1.weight") || $0.key.hasSuffix("final_layer_norm.weight")
            }.map(\.tensor)
            XCTAssertEqual(picked.count, 4, name)
            for p in picked { p.requiresGrad = true }
            var g = RandomGenerator(seed: 41)
            let directions = picked.map { Tensor.randn($0.shape, std: 0.05, generator: &g) }
            let probe = Autograd.noGrad { model(ids).lastHiddenState }
            let r = Tensor.randn(probe.shape, generator: &g)
            let (err, scale) = try hessianVectorProductAgainstFiniteDifferences(leaves: picked, directions: directions, h: 1e-2) {
                let y = model(ids).lastHiddenState
                return (y.square() * r).mean()
            }
            XCTAssertGreaterThan(scale, 1e-5, "\(name): vacuous H v")
            XCTAssertLessThan(err, 2e-2, "\(name): max |H v - finite differences| / max |finite differences|")
        }
    }

    func testUNet2DConditionModel() throws {
        let model = try UNet2DConditionModel.load(from: fixtureURL("unet_sd1"))
        for p in model.parameters { p.requiresGrad = false }
        let io = try SafetensorsFile(url: fixtureURL("unet_sd1").appendingPathComponent("io.safetensors"))
        let sample = try io.tensor("sample").copy(), states = try io.tensor("encoder_hidden_states").copy()
        sample.requiresGrad = true
        states.requiresGrad = true
        var g = RandomGenerator(seed: 42)
        let target = Tensor.randn(sample.shape, generator: &g)
        let directions = [Tensor.randn(sample.shape, generator: &g), Tensor.randn(states.shape, generator: &g)]
        let (err, scale) = try hessianVectorProductAgainstFiniteDifferences(leaves: [sample, states], directions: directions, h: 1e-2) {
            (model(sample, timesteps: [10, 500], encoderHiddenStates: states) - target).square().mean()
        }
        XCTAssertGreaterThan(scale, 1e-5, "vacuous H v")
        XCTAssertLessThan(err, 2e-2, "max |H v - finite differences| / max |finite differences|")
    }
}
