import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// The shipped model (models/fashion-mnist) gives diffusers' output (fixture written by
/// tools/check_shipped_model.py, which also checks that diffusers loads the folder).
final class ShippedModelTests: XCTestCase {
    func testShippedModelMatchesDiffusers() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("models/fashion-mnist")
        let model = try UNet2DModel.load(from: folder)
        _ = try SchedulerConfig.load(folder.appendingPathComponent("scheduler/scheduler_config.json"))
        let io = try SafetensorsFile(url: fixtureURL("shipped_model_io.safetensors"))
        let out = Autograd.noGrad {
            model(try! io.tensor("sample"), timesteps: try! io.tensor("timesteps").scalars, classLabels: try! io.tensor("class_labels"))
        }
        let expected = try io.tensor("output")
        XCTAssertLessThan(relativeDifference(out, expected), 1e-4)
    }

    // The shipped model on the reference backend too (plain loops; a few seconds).
    func testShippedModelMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testShippedModelMatchesDiffusers() }
    }
}
