import Datasets
import Foundation
import Images
import TensorEngine
import XCTest

func fixture(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

final class DatasetsTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("ds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    func idxBytes(dims: [Int], data: [UInt8]) -> [UInt8] {
        var b: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return b + data
    }

    func testIDXParsesAndRejectsMalformedFiles() throws {
        let ok = try IDX.parse(idxBytes(dims: [2, 2, 3], data: Array(0..<12)), name: "x.idx")
        XCTAssertEqual(ok.dimensions, [2, 2, 3])
        XCTAssertEqual(ok.bytes, Array(0..<12))
        for (bytes, needle) in [(idxBytes(dims: [2, 2, 3], data: Array(0..<11)), "need 12 bytes"),
                                ([1, 0, 8, 1, 0, 0, 0, 1, 5], "magic"),
                                ([0, 0, 0x0D, 1, 0, 0, 0, 1, 5], "not supported"),
                                ([0, 0, 8, 3, 0, 0], "truncated")] as [([UInt8], String)] {
            XCTAssertThrowsError(try IDX.parse(bytes, name: "bad.idx")) { e in
                XCTAssertTrue("\(e)".contains("bad.idx") && "\(e)".contains(needle), "\(e)")
            }
        }
    }

    func testMNISTFormatFolderWithGzipAndRawFiles() throws {
        let pixels: [UInt8] = (0..<(3 * 4)).map { UInt8($0 * 20) }
        try Data(idxBytes(dims: [3, 2, 2], data: pixels)).write(to: tmp.appendingPathComponent("t10k-images-idx3-ubyte"))
        try Data(idxBytes(dims: [3], data: [2, 0, 1])).write(to: tmp.appendingPathComponent("t10k-labels-idx1-ubyte"))
        let ds = try ImageDataset.mnistFormat(directory: tmp, split: .test)
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.labels, [2, 0, 1])
        XCTAssertEqual(ds.classNames, ["0", "1", "2"])
        let batch = ds.images([1])
        XCTAssertEqual(batch.shape, [1, 1, 2, 2])
        XCTAssertEqual(batch.scalars[0], Float(80) / 127.5 - 1, accuracy: 1e-6)
        XCTAssertThrowsError(try ImageDataset.mnistFormat(directory: tmp, split: .train)) { e in
            XCTAssertTrue("\(e)".contains("train-images-idx3-ubyte"), "\(e)")
        }
        // A truncated gzip file is reported, not crashed on.
        try Data([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2]).write(to: tmp.appendingPathComponent("broken.gz"))
        XCTAssertThrowsError(try IDX.read(tmp.appendingPathComponent("broken.gz"))) { e in
            XCTAssertTrue("\(e)".contains("broken.gz"), "\(e)")
        }
    }

    func testFashionMNISTFromDebianPackage() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: FashionMNIST.debianDirectory.path),
                          "dataset-fashion-mnist is not installed (make test installs it)")
        let test = try FashionMNIST.load(split: .test)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual([test.height, test.width, test.channels], [28, 28, 1])
        XCTAssertEqual(test.labels.prefix(5), [9, 2, 1, 1, 6])   // the well-known first test labels
        XCTAssertEqual(test.classNames[9], "Ankle boot")
    }

    func testPNGRoundTripAndJPEGDecode() throws {
        let img = Image(width: 3, height: 2, channels: 3, pixels: (0..<18).map { UInt8($0 * 13) })
        let url = tmp.appendingPathComponent("a.png")
        try img.writePNG(to: url)
        XCTAssertEqual(try Image.read(url, channels: 3), img)
        let gray = try Image.read(fixture("gradient_gray.png"), channels: 1)
        XCTAssertEqual([gray.width, gray.height], [12, 8])
        XCTAssertEqual(gray.pixels[3 * 12 + 5], UInt8((5 * 20 + 3) % 256))
        let jpeg = try Image.read(fixture("gradient.jpg"), channels: 3)
        XCTAssertEqual([jpeg.width, jpeg.height, jpeg.channels], [12, 8, 3])
        // Lossy, but close to the encoded gradient.
        XCTAssertEqual(Double(jpeg.pixels[(2 * 12 + 4) * 3]), 80, accuracy: 12)
        XCTAssertEqual(Double(jpeg.pixels[(2 * 12 + 4) * 3 + 1]), 60, accuracy: 12)
    }

    func testCorruptImagesGiveErrorsNamingTheFile() throws {
        XCTAssertThrowsError(try Image.read(fixture("truncated.jpg"), channels: 3)) { e in
            XCTAssertTrue("\(e)".contains("truncated.jpg"), "\(e)")
        }
        let fake = tmp.appendingPathComponent("fake.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3]).write(to: fake)
        XCTAssertThrowsError(try Image.read(fake, channels: 1)) { e in XCTAssertTrue("\(e)".contains("fake.png"), "\(e)") }
        let text = tmp.appendingPathComponent("notes.jpg")
        try Data("hello".utf8).write(to: text)
        XCTAssertThrowsError(try Image.read(text, channels: 1)) { e in XCTAssertTrue("\(e)".contains("not a PNG or JPEG"), "\(e)") }
    }

    func testImageFolderDataset() throws {
        for (cls, n) in [("cat", 2), ("dog", 1)] {
            let dir = tmp.appendingPathComponent(cls)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for i in 0..<n {
                try Image(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: UInt8(40 * i), count: 48))
                    .writePNG(to: dir.appendingPathComponent("\(i).png"))
            }
        }
        let ds = try ImageFolder.load(tmp, size: 2, channels: 3)
        XCTAssertEqual(ds.classNames, ["cat", "dog"])
        XCTAssertEqual(ds.labels, [0, 0, 1])
        XCTAssertEqual(ds.images([0, 1, 2]).shape, [3, 3, 2, 2])
    }
}
