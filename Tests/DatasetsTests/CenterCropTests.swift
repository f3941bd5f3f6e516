import Foundation
import Images
import XCTest

/// `Image.centerCropArr` against PIL (`tools/make_center_crop_fixtures.py`): every byte equal.
final class CenterCropTests: XCTestCase {
    func testCenterCropArrMatchesPIL() throws {
        for name in ["101x67_16", "53x37_16", "12x9_16"] {
            let image = try Image.read(fixture("center_crop/\(name).png"), channels: 3)
            let expected = [UInt8](try Data(contentsOf: fixture("center_crop/\(name).bin")))
            let crop = image.centerCropArr(size: 16)
            XCTAssertEqual([crop.width, crop.height, crop.channels], [16, 16, 3], name)
            let differing = zip(crop.pixels, expected).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(name): \(differing) of \(expected.count) bytes differ from PIL")
        }
        let x = try Image.centerCroppedInput(fixture("center_crop/53x37_16.png"), size: 16)
        XCTAssertEqual(x.shape, [1, 3, 16, 16])
    }
}
