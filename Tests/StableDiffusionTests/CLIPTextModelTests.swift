import Diffusion
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// Parity with transformers' CLIPTextModel on the random-weight folders written by
/// tools/make_sd_fixtures.py (sd1: quick_gelu, 2 layers; sd2: gelu, 3 layers): within 1e-4 relative.
final class CLIPTextModelTests: XCTestCase {
    func checkParity(_ name: String) throws {
        let model = try CLIPTextModel.load(from: fixtureURL(name))
        let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
        let out = model(try io.tensor("input_ids"), outputHiddenStates: true)
        XCTAssertLessThan(relativeDifference(out.lastHiddenState, try io.tensor("last_hidden_state")), 1e-4, name)
        XCTAssertEqual(out.hiddenStates.count, model.config.numHiddenLayers + 1)
        XCTAssertLessThan(relativeDifference(out.hiddenStates[out.hiddenStates.count - 2], try io.tensor("penultimate_hidden_state")), 1e-4, name)
        let short = model(try io.tensor("short_ids")).lastHiddenState
        XCTAssertLessThan(relativeDifference(short, try io.tensor("short_last_hidden_state")), 1e-4, "\(name) short")
    }

    func testSD1LikeTextModelMatchesTransformers() throws { try checkParity("sd1") }

    func testSD2LikeTextModelMatchesTransformers() throws { try checkParity("sd2") }

    // The same parity with every op on the reference backend (plain loops).
    func testSD1LikeTextModelMatchesTransformersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("sd1") }
    }

    func testSD2LikeTextModelMatchesTransformersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try checkParity("sd2") }
    }

    func testTokenizerIdsFeedTheModel() throws {
        let tok = try CLIPTokenizer.load(from: fixtureURL("sd1"))
        let model = try CLIPTextModel.load(from: fixtureURL("sd1"))
        let io = try SafetensorsFile(url: fixtureURL("sd1").appendingPathComponent("io.safetensors"))
        let h = model.encode([tok.encodePadded("a photo of a cat.")])
        let all = try io.tensor("last_hidden_state")
        XCTAssertLessThan(relativeDifference(h, all.sliced(axis: 0, 0..<1)), 1e-4)
    }

    func testLoadingNamesKeysAndIgnoresPositionIds() throws {
        let weights = fixtureURL("sd1").appendingPathComponent("text_encoder/model.safetensors")
        let raw = try SafetensorsFile(url: weights).tensors()
        var tensors: [String: Tensor] = [:]
        for (k, t) in raw { tensors["text_model." + k] = t }
        tensors["text_model.embeddings.position_ids"] = Tensor.arange(77).reshaped([1, 77])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: fixtureURL("sd1").appendingPathComponent("text_encoder/config.json"), to: dir.appendingPathComponent("config.json"))
        try Safetensors.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertNoThrow(try CLIPTextModel.load(from: dir))
        var broken = tensors
        broken.removeValue(forKey: "text_model.encoder.layers.1.mlp.fc2.bias")
        broken["text_model.extra.weight"] = Tensor.zeros([1])
        try Safetensors.write(broken, to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try CLIPTextModel.load(from: dir)) {
            XCTAssertTrue("\($0)".contains("text_model.encoder.layers.1.mlp.fc2.bias") && "\($0)".contains("model.safetensors"), "\($0)")
        }
        broken = tensors
        broken["text_model.final_layer_norm.weight"] = Tensor.zeros([5])
        try Safetensors.write(broken, to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try CLIPTextModel.load(from: dir)) { XCTAssertTrue("\($0)".contains("final_layer_norm.weight"), "\($0)") }
        try #"{"hidden_act": "relu", "hidden_size": 32, "num_attention_heads": 4}"#.write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTextModel.load(from: dir)) { XCTAssertTrue("\($0)".contains("config.json") && "\($0)".contains("relu"), "\($0)") }
    }
}
