import Foundation
import StableDiffusion
import XCTest

/// Inputs the fuzz targets (Fuzzing/) found to trap; each must now be a thrown error naming the
/// file and the field.
final class ParserFuzzRegressionTests: XCTestCase {
    func refusal(_ json: String, _ parse: (Data, String) throws -> Void) -> String? {
        do { try parse(Data(json.utf8), "dir/config.json"); return nil } catch { return "\(error)" }
    }

    /// A number too large for Int (1e300, 9.3e18) trapped in the integer conversion of
    /// `layers_per_block` (fuzz-model-config); NaN-free JSON, so only magnitude and fractions matter.
    func testIntegerFieldsOutOfIntRangeAreRefused() throws {
        for value in ["1e300", "9.3e18", "-1e19"] {
            for key in ["layers_per_block", "in_channels", "norm_num_groups", "sample_size"] {
                let vae = refusal("{\"\(key)\": \(value)}") { _ = try AutoencoderKLConfig.parse($0, file: $1) }
                XCTAssertTrue(vae?.contains("dir/config.json") == true && vae?.contains(key) == true, "VAE \(key) = \(value): \(vae ?? "accepted")")
            }
            for key in ["layers_per_block", "time_embedding_dim", "attention_head_dim", "sample_size", "in_channels"] {
                let unet = refusal("{\"\(key)\": \(value)}") { _ = try UNet2DConditionConfig.parse($0, file: $1) }
                XCTAssertTrue(unet?.contains("dir/config.json") == true && unet?.contains(key) == true, "UNet \(key) = \(value): \(unet ?? "accepted")")
            }
            let list = refusal("{\"block_out_channels\": [32, \(value)]}") { _ = try UNet2DConditionConfig.parse($0, file: $1) }
            XCTAssertTrue(list?.contains("block_out_channels") == true, list ?? "accepted")
        }
    }

    /// `norm_num_groups` 0 divided by zero in the divisibility check (fuzz-model-config).
    func testZeroNormGroupsAreRefused() {
        let unet = refusal("{\"norm_num_groups\": 0}") { _ = try UNet2DConditionConfig.parse($0, file: $1) }
        XCTAssertTrue(unet?.contains("norm_num_groups must be positive") == true, unet ?? "accepted")
        let vae = refusal("{\"norm_num_groups\": 0}") { _ = try AutoencoderKLConfig.parse($0, file: $1) }
        XCTAssertTrue(vae?.contains("norm_num_groups must be positive") == true, vae ?? "accepted")
    }
}

final class TokenizerFuzzRegressionTests: XCTestCase {
    /// `model_max_length` below 2 in tokenizer_config.json reached a precondition in `encodePadded`.
    func testModelMaxLengthBelowTwoIsRefused() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        try Data("{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"a</w>\": 2}".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\n".utf8).write(to: dir.appendingPathComponent("merges.txt"))
        for length in [1, 0, -3] {
            try Data("{\"model_max_length\": \(length)}".utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
            XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { e in
                XCTAssertTrue("\(e)".contains("tokenizer_config.json") && "\(e)".contains("model_max_length"), "\(e)")
            }
        }
        try Data("{\"model_max_length\": 2}".utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        XCTAssertEqual(try CLIPTokenizer.load(from: dir).encodePadded("a a a"), [0, 1])
    }
}
