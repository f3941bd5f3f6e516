import Diffusion
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// Parity with diffusers' UNet2DConditionModel on the random-weight (F16-stored) folders written by
/// `tools/make_sd_fixtures.py unet`: SD 1.x-like (1x1 conv projections, 2 heads everywhere) and
/// SD 2.x-like (linear projections, heads [1, 2, 4] per block), three levels, two layers per block,
/// 8x8 latents, encoder states [2, 7, 32]; outputs within 1e-4 relative.
final class UNet2DConditionModelTests: XCTestCase {
    func checkParity(_ name: String) throws {
        let model = try UNet2DConditionModel.load(from: fixtureURL(name))
        let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
        let timesteps = try io.tensor("timesteps")
        let steps = withExtendedLifetime(timesteps) { (0..<timesteps.count).map { timesteps.scalars[$0] } }
        XCTAssertEqual(steps, [10, 500])
        let out = Autograd.noGrad {
            model(try! io.tensor("sample"), timesteps: steps,
                  encoderHiddenStates: try! io.tensor("encoder_hidden_states"))
        }
        XCTAssertLessThan(relativeDifference(out, try io.tensor("output")), 1e-4, name)
        let countTensor = try io.tensor("parameter_count")
        let expectedCount = withExtendedLifetime(countTensor) { Int(countTensor.scalars[0]) }
        XCTAssertEqual(model.parameterCount, expectedCount)
        XCTAssertEqual(model.config.parameterCount, expectedCount, "analytic count")
        // The ConditionalNoisePredictor entry point is the same forward.
        let viaProtocol = Autograd.noGrad {
            model.predict(try! io.tensor("sample"), timesteps: [10, 500], conditions: try! io.tensor("encoder_hidden_states"))
        }
        XCTAssertLessThan(relativeDifference(viaProtocol, out), 1e-6)
    }

    func testSD1LikeUNetMatchesDiffusers() throws { try checkParity("unet_sd1") }

    func testSD2LikeUNetMatchesDiffusers() throws { try checkParity("unet_sd2") }

    // The same parity with every op on the reference backend (plain loops).
    func testSD1LikeUNetMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("unet_sd1") }
    }

    func testSD2LikeUNetMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("unet_sd2") }
    }

    func testLoadingNamesMissingAndUnusedKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: fixtureURL("unet_sd1/config.json"), to: dir.appendingPathComponent("config.json"))
        var tensors = try SafetensorsFile(url: fixtureURL("unet_sd1/diffusion_pytorch_model.safetensors")).tensors()
        tensors.removeValue(forKey: "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight")
        tensors["mid_block.attentions.0.extra"] = Tensor.zeros([1])
        try Safetensors.write(tensors, to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        XCTAssertThrowsError(try UNet2DConditionModel.load(from: dir)) {
            XCTAssertTrue("\($0)".contains("attn2.to_k.weight") && "\($0)".contains("diffusion_pytorch_model.safetensors"), "\($0)")
        }
    }
}
