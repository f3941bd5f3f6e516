import DiT
import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Config parsing (diffusers' keys, both class names published DiT folders use) and strict
/// loading: every error names the file and the field or tensor.
final class DiTConfigTests: XCTestCase {
    func parse(_ json: String) throws -> DiTTransformer2DConfig {
        try DiTTransformer2DConfig.parse(Data(json.utf8), file: "transformer/config.json")
    }

    func assertRejected(_ json: String, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(json), file: file, line: line) { error in
            let text = "\(error)"
            for w in words + ["transformer/config.json"] { XCTAssertTrue(text.contains(w), "'\(w)' not in: \(text)", file: file, line: line) }
        }
    }

    func testDiTXL2ConfigsAsDiffusersWritesThem() throws {
        let modern = try DiTTransformer2DConfig.load(fixtureURL("configs/dit_xl_2_256.json"))
        let legacy = try DiTTransformer2DConfig.load(fixtureURL("configs/dit_xl_2_256_transformer2d.json"))
        XCTAssertEqual(modern, legacy, "the Transformer2DModel-named config describes the same DiT")
        XCTAssertEqual(modern.innerDim, 1152)
        XCTAssertEqual(modern.numLayers, 28)
        XCTAssertTrue(modern.learnsSigma)
        XCTAssertEqual(modern.classCount, 1000)
        let count = try String(contentsOf: fixtureURL("configs/dit_xl_2_256_parameter_count.txt"), encoding: .utf8)
        XCTAssertEqual(modern.parameterCount, Int(count.trimmingCharacters(in: .whitespacesAndNewlines)), "diffusers' count")
        var defaults = DiTTransformer2DConfig()
        defaults.outChannels = 8  // diffusers' default is null (= in_channels); DiT-XL/2 learns sigma
        XCTAssertEqual(defaults, modern, "the other defaults are DiT-XL/2's")
    }

    func testWrittenConfigReadsBack() throws {
        var c = DiTTransformer2DConfig()
        c.numLayers = 3; c.outChannels = nil; c.normEps = 1e-6; c.attentionBias = false
        let dir = try temporaryDirectory("ditcfg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        try c.write(to: url)
        XCTAssertEqual(try DiTTransformer2DConfig.load(url), c)
        let text = try String(contentsOf: url, encoding: .utf8)
        for key in ["\"_class_name\" : \"DiTTransformer2DModel\"", "\"out_channels\" : null", "\"num_embeds_ada_norm\" : 1000"] {
            XCTAssertTrue(text.contains(key), key)
        }
    }

    func testBadFieldsAreNamed() {
        assertRejected(#"{"num_layers": "many"}"#, mentioning: ["num_layers", "integer"])
        assertRejected(#"{"norm_type": "ada_norm"}"#, mentioning: ["norm_type", "ada_norm_zero"])
        assertRejected(#"{"num_embeds_ada_norm": null}"#, mentioning: ["num_embeds_ada_norm"])
        assertRejected(#"{"activation_fn": "geglu"}"#, mentioning: ["activation_fn", "geglu"])
        assertRejected(#"{"num_attention_heads": 3, "attention_head_dim": 3}"#, mentioning: ["attention_head_dim", "divisible by 4"])
        assertRejected(#"{"sample_size": 7, "patch_size": 2}"#, mentioning: ["sample_size", "patch_size"])
        assertRejected(#"{"_class_name": "UNet2DModel"}"#, mentioning: ["_class_name", "UNet2DModel"])
        assertRejected(#"{"_class_name": "Transformer2DModel", "cross_attention_dim": 768}"#, mentioning: ["cross_attention_dim"])
        assertRejected(#"{"_class_name": "Transformer2DModel", "only_cross_attention": true}"#, mentioning: ["only_cross_attention"])
        assertRejected(#"{"interpolation_scale": 2}"#, mentioning: ["interpolation_scale"])
        assertRejected(#"{"out_channels": 0}"#, mentioning: ["out_channels"])
        assertRejected("[1, 2]", mentioning: ["config"])
    }

    func testMissingConfigAndWeightsAreNamed() throws {
        let dir = try temporaryDirectory("ditload")
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try DiTTransformer2DModel.load(from: dir)) {
            XCTAssertTrue("\($0)".contains("transformer/") && "\($0)".contains(dir.path), "\($0)")
        }
        try FileManager.default.copyItem(at: fixtureURL("dit_sigma/config.json"), to: dir.appendingPathComponent("config.json"))
        try Data().write(to: dir.appendingPathComponent("diffusion_pytorch_model.bin"))
        XCTAssertThrowsError(try DiTTransformer2DModel.load(from: dir)) {
            XCTAssertTrue("\($0)".contains("diffusion_pytorch_model.safetensors") && "\($0)".contains(".bin"), "\($0)")
        }
    }
}

final class DiTStrictLoadingTests: XCTestCase {
    /// A copy of dit_sigma whose weights are `edit`ed; returns the error text of loading it.
    func loadingError(_ edit: (inout [String: Tensor]) -> Void) throws -> String {
        let dir = try temporaryDirectory("ditstrict")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: fixtureURL("dit_sigma/config.json"), to: dir.appendingPathComponent("config.json"))
        var tensors = try SafetensorsFile(url: fixtureURL("dit_sigma/diffusion_pytorch_model.safetensors")).tensors()
        edit(&tensors)
        try Safetensors.write(tensors, to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        do {
            _ = try DiTTransformer2DModel.load(from: dir)
            XCTFail("loaded")
            return ""
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.contains("diffusion_pytorch_model.safetensors"), text)
            return text
        }
    }

    func testMissingTensorIsNamed() throws {
        let text = try loadingError { $0.removeValue(forKey: "transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight") }
        XCTAssertTrue(text.contains("missing") && text.contains("transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight"), text)
    }

    func testUnusedTensorIsNamed() throws {
        // e.g. a positional table saved as a persistent buffer: diffusers' DiT does not keep it.
        let text = try loadingError { $0["pos_embed.pos_embed"] = Tensor.zeros([1, 16, 32]) }
        XCTAssertTrue(text.contains("unused") && text.contains("pos_embed.pos_embed"), text)
    }

    func testWrongShapeIsNamed() throws {
        // A label table without the null class's row.
        let key = "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"
        let text = try loadingError { $0[key] = Tensor.zeros([5, 32]) }
        XCTAssertTrue(text.contains(key) && text.contains("[5, 32]") && text.contains("[6, 32]"), text)
    }
}
