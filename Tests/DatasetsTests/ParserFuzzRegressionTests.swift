import Datasets
import Images
import Foundation
import XCTest

/// Inputs the fuzz targets (Fuzzing/) found to crash; each must now be a thrown error naming the file.
final class ParserFuzzRegressionTests: XCTestCase {
    /// An IDX header whose four sizes multiply past Int.max trapped on the overflow (fuzz-idx).
    func testIDXDimensionsWhoseProductOverflowsAreRefused() {
        let header: [UInt8] = [0, 0, 8, 4] + [UInt8](repeating: 0xFF, count: 16)
        XCTAssertThrowsError(try IDX.decode(Data(header + [1, 2, 3]), name: "huge-idx3-ubyte")) { e in
            XCTAssertTrue("\(e)".contains("huge-idx3-ubyte") && "\(e)".contains("more than"), "\(e)")
        }
        // The crashing input fuzz-idx found: sizes 0x0008baba, 0xba39baba, 0xbabababa, ...
        let found: [UInt8] = [0, 0, 8, 3, 0, 8, 0xBA, 0xBA, 0xBA, 0x39, 0xBA, 0xBA, 0xBA, 0xBA, 0xBA, 0xBA, 1, 2]
        XCTAssertThrowsError(try IDX.decode(Data(found), name: "found.idx"))
    }

    var fixtures: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures") }

    /// A JPEG whose frame header claims 65498 x 63994 pixels (fuzz-jpeg's input, 125 bytes) made the
    /// decoder allocate 12.5 GB; now refused from the header, before any allocation.
    func testJPEGClaimingHugeDimensionsIsRefusedBeforeAllocating() throws {
        var bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("gradient.jpg")))
        let sof = try XCTUnwrap((0..<(bytes.count - 1)).first { bytes[$0] == 0xFF && (bytes[$0 + 1] == 0xC0 || bytes[$0 + 1] == 0xC2) })
        bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0xF9, 0xFA, 0xFF, 0xDA])  // height, width
        for channels in [1, 3] {
            XCTAssertThrowsError(try Image.decode(Data(bytes), channels: channels, name: "huge.jpg")) { e in
                XCTAssertTrue("\(e)".contains("huge.jpg") && "\(e)".contains("65498 x 63994 pixels"), "\(e)")
            }
        }
    }

    /// The same for a PNG header (IHDR 60000 x 60000, its CRC recomputed so libpng accepts it).
    func testPNGClaimingHugeDimensionsIsRefusedBeforeAllocating() throws {
        var bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("gradient_gray.png")))
        let ihdr = 12  // after the 8-byte signature and the chunk length
        XCTAssertEqual(Array(bytes[ihdr..<(ihdr + 4)]), Array("IHDR".utf8))
        bytes.replaceSubrange((ihdr + 4)..<(ihdr + 12), with: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60])
        let crc = crc32(Array(bytes[ihdr..<(ihdr + 17)]))
        bytes.replaceSubrange((ihdr + 17)..<(ihdr + 21), with: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        XCTAssertThrowsError(try Image.decode(Data(bytes), channels: 3, name: "huge.png")) { e in
            XCTAssertTrue("\(e)".contains("huge.png") && "\(e)".contains("60000 x 60000 pixels"), "\(e)")
        }
    }

    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }
}
