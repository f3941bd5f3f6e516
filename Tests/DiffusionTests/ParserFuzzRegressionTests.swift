import Diffusion
import Foundation
import XCTest

/// Inputs the fuzz targets (Fuzzing/) found to trap or exhaust memory; each must now be a thrown
/// error naming the file and the field.
final class ParserFuzzRegressionTests: XCTestCase {
    func assertRefused(_ json: String, naming words: [String], file: StaticString = #filePath, line: UInt = #line,
                       _ parse: (Data, String) throws -> Void) {
        XCTAssertThrowsError(try parse(Data(json.utf8), "dir/config.json"), file: file, line: line) { error in
            for w in ["dir/config.json"] + words { XCTAssertTrue("\(error)".contains(w), "\(error) does not name \(w)", file: file, line: line) }
        }
    }

    /// `norm_num_groups` 0 divided by zero in the divisibility check (fuzz-model-config).
    func testZeroNormGroupsAreRefused() {
        let base = "\"block_out_channels\": [32], \"down_block_types\": [\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\"]"
        assertRefused("{\(base), \"norm_num_groups\": 0}", naming: ["norm_num_groups"]) { _ = try UNet2DConfig.parse($0, file: $1) }
        assertRefused("{\(base), \"attn_norm_num_groups\": 0}", naming: ["attn_norm_num_groups"]) { _ = try UNet2DConfig.parse($0, file: $1) }
    }

    /// A schedule of 10^12 timesteps was allocated (a fatal allocation failure); now refused.
    func testHugeTimestepCountIsRefused() {
        for t in ["1000000000000", "100001", "1", "-5"] {
            XCTAssertThrowsError(try SchedulerConfig.parse(Data("{\"num_train_timesteps\": \(t)}".utf8), file: "m/scheduler_config.json")) { error in
                XCTAssertTrue("\(error)".contains("m/scheduler_config.json") && "\(error)".contains("num_train_timesteps"), "\(error)")
            }
        }
        XCTAssertEqual(try SchedulerConfig.parse(Data("{\"num_train_timesteps\": 4000}".utf8), file: "s").numTrainTimesteps, 4000)
    }
}
