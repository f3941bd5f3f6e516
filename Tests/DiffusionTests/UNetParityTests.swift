import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Parity with diffusers' UNet2DModel on the random-weight folders written by
/// tools/make_diffusion_fixtures.py: forward within 1e-4 relative, gradients within 1e-3.
final class UNetParityTests: XCTestCase {
    func checkParity(_ name: String) throws {
        let folder = fixtureURL(name)
        let model = try UNet2DModel.load(from: folder)
        let io = try SafetensorsFile(url: folder.appendingPathComponent("io.safetensors"))
        let sample = try io.tensor("sample"), expected = try io.tensor("output"), weights = try io.tensor("weights")
        let timesteps = try io.tensor("timesteps").scalars
        let labels = io.contains("class_labels") ? try io.tensor("class_labels") : nil
        let x = Tensor(shape: sample.shape, storage: sample.storage, requiresGrad: true)
        let out = model(x, timesteps: timesteps, classLabels: labels)
        let forwardError = relativeDifference(out, expected)
        XCTAssertLessThan(forwardError, 1e-4, "\(name) forward")
        (out * weights).sum().backward()
        XCTAssertLessThan(relativeDifference(x.grad!, try io.tensor("grad_sample")), 1e-3, "\(name) d/d sample")
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.key, $0.tensor) })
        for key in io.names where key.hasPrefix("grad.") {
            let pname = String(key.dropFirst(5))
            guard let p = params[pname], let g = p.grad else { XCTFail("\(name): no gradient for \(pname)"); continue }
            XCTAssertLessThan(relativeDifference(g, try io.tensor(key)), 1e-3, "\(name) d/d \(pname)")
        }
    }

    func testTwoLevelClassConditionalUNetMatchesDiffusers() throws { try checkParity("unet_a") }

    func testThreeLevelNonSquareUNetMatchesDiffusers() throws { try checkParity("unet_b") }

    // The same parity, forward and gradients, with every op on the reference backend (plain loops).
    func testTwoLevelClassConditionalUNetMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("unet_a") }
    }

    func testThreeLevelNonSquareUNetMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("unet_b") }
    }

    func testSaveThenLoadRoundTrips() throws {
        let model = try UNet2DModel.load(from: fixtureURL("unet_a"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unet-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.save(to: dir)
        let again = try UNet2DModel.load(from: dir)
        XCTAssertEqual(again.config, model.config)
        for ((k1, t1), (k2, t2)) in zip(model.namedParameters(), again.namedParameters()) {
            XCTAssertEqual(k1, k2)
            XCTAssertEqual(t1.scalars, t2.scalars, k1)
        }
    }

    func testLoadingNamesMissingUnusedAndMisshapenTensors() throws {
        let source = try SafetensorsFile(url: fixtureURL("unet_a").appendingPathComponent("diffusion_pytorch_model.safetensors"))
        var tensors = try source.tensors()
        let model = UNet2DModel(config: try UNet2DConfig.load(fixtureURL("unet_a").appendingPathComponent("config.json")))
        var broken = tensors
        broken.removeValue(forKey: "conv_in.weight")
        XCTAssertThrowsError(try model.load(broken, source: "w.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("conv_in.weight") && "\(e)".contains("w.safetensors") && "\(e)".contains("missing"), "\(e)")
        }
        broken = tensors
        broken["down_blocks.9.extra"] = Tensor.zeros([1])
        XCTAssertThrowsError(try model.load(broken, source: "w.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("down_blocks.9.extra") && "\(e)".contains("unused"), "\(e)")
        }
        tensors["conv_out.bias"] = Tensor.zeros([7])
        XCTAssertThrowsError(try model.load(tensors, source: "w.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("conv_out.bias") && "\(e)".contains("[7]"), "\(e)")
        }
    }

    func testUnsupportedConfigIsRejectedWithFieldName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var config = try UNet2DConfig.load(fixtureURL("unet_a").appendingPathComponent("config.json"))
        config.resnetTimeScaleShift = "scale_shift"
        try config.write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try UNet2DModel.load(from: dir)) { e in
            XCTAssertTrue("\(e)".contains("resnet_time_scale_shift") && "\(e)".contains("config.json"), "\(e)")
        }
    }
}
