import DiT
import Foundation
import XCTest

final class ParserFuzzRegressionTests: XCTestCase {
    /// num_attention_heads x attention_head_dim overflowed Int (a trap) in the divisibility check.
    func testOverflowingInnerDimensionIsRefused() throws {
        let json = "{\"num_attention_heads\": 4294967296, \"attention_head_dim\": 4294967296, \"num_embeds_ada_norm\": 10}"
        XCTAssertThrowsError(try DiTTransformer2DConfig.parse(Data(json.utf8), file: "dit/config.json")) { error in
            XCTAssertTrue("\(error)".contains("dit/config.json") && "\(error)".contains("num_attention_heads x attention_head_dim"), "\(error)")
        }
    }
}
