import Foundation
import XCTest
import StableDiffusion
import Diffusion

/// The real SD 1.5 and SD 2.0-base `unet/config.json` and `vae/config.json` (as published on the
/// hub) parse, validate and give diffusers' parameter counts, computed without allocating weights.
final class SDConfigTests: XCTestCase {
    func config(_ name: String) -> URL { fixtureURL("configs/\(name)") }

    func testSD15UNetConfig() throws {
        let c = try UNet2DConditionConfig.load(config("sd15_unet.json"))
        XCTAssertEqual(c.attentionHeads, [8, 8, 8, 8])
        XCTAssertEqual(c.crossAttentionDim, [768, 768, 768, 768])
        XCTAssertFalse(c.useLinearProjection)
        XCTAssertEqual(c.parameterCount, 859_520_964)
    }

    func testSD2BaseUNetConfig() throws {
        let c = try UNet2DConditionConfig.load(config("sd2base_unet.json"))
        XCTAssertEqual(c.attentionHeads, [5, 10, 20, 20])
        XCTAssertEqual(c.crossAttentionDim, [1024, 1024, 1024, 1024])
        XCTAssertTrue(c.useLinearProjection)
        XCTAssertEqual(c.parameterCount, 865_910_724)
    }

    func testVAEConfigs() throws {
        for name in ["sd15_vae.json", "sd2base_vae.json"] {
            let c = try AutoencoderKLConfig.load(config(name))
            XCTAssertEqual(c.blockOutChannels, [128, 256, 512, 512])
            XCTAssertEqual(c.scalingFactor, 0.18215)
            XCTAssertEqual(c.parameterCount, 83_653_863, name)
            XCTAssertEqual(c.encoderParameterCount, 34_163_664, name)
        }
    }

    func testUnsupportedFieldsAreNamed() throws {
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: config("sd15_unet.json"))) as! [String: Any]
        let cases: [(String, Any, String)] = [
            ("only_cross_attention", true, "only_cross_attention"),
            ("transformer_layers_per_block", 2, "transformer_layers_per_block"),
            ("class_embed_type", "timestep", "class_embed_type"),
            ("addition_embed_type", "text_time", "addition_embed_type"),
            ("down_block_types", ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"], "SimpleCrossAttnDownBlock2D"),
            ("attention_head_dim", [8, 8], "attention_head_dim"),
            ("attention_head_dim", 7, "attention_head_dim"),
            ("num_attention_heads", 8, "num_attention_heads"),
            ("_class_name", "UNet2DModel", "_class_name"),
        ]
        for (key, value, needle) in cases {
            var json = base
            json[key] = value
            let data = try JSONSerialization.data(withJSONObject: json)
            XCTAssertThrowsError(try UNet2DConditionConfig.parse(data, file: "unet/config.json"), key) {
                XCTAssertTrue("\($0)".contains(needle) && "\($0)".contains("unet/config.json"), "\($0)")
            }
        }
        var upcast = base
        upcast["upcast_attention"] = true
        XCTAssertNoThrow(try UNet2DConditionConfig.parse(JSONSerialization.data(withJSONObject: upcast), file: "x"))
        var vae = try JSONSerialization.jsonObject(with: Data(contentsOf: config("sd15_vae.json"))) as! [String: Any]
        vae["shift_factor"] = 0.1159
        XCTAssertThrowsError(try AutoencoderKLConfig.parse(JSONSerialization.data(withJSONObject: vae), file: "vae/config.json")) {
            XCTAssertTrue("\($0)".contains("shift_factor") && "\($0)".contains("vae/config.json"), "\($0)")
        }
    }
}
