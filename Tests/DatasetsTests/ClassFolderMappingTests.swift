import Datasets
import Foundation
import XCTest

final class ClassFolderMappingTests: XCTestCase {
    let imageNet = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark, white shark, man-eater", "crane", "crane"]

    func testNamesMatchExactlyThenLooselyThenBySynonym() throws {
        let m = try ClassFolderMapping.byName(folders: ["Ankle_boot", "Trouser", "t-shirt top"],
                                              classNames: ["T-shirt/top", "Trouser", "Pullover", "Ankle boot"], root: "/d")
        XCTAssertEqual(m.classIDs, [3, 1, 0])
        XCTAssertEqual(m.source, .names)
        XCTAssertEqual(try ClassFolderMapping.byName(folders: ["goldfish", "great_white_shark", "Tinca tinca"], classNames: imageNet, root: "/d").classIDs,
                       [1, 2, 0])
    }

    func testUnknownAmbiguousAndDoubleMatchesAreRefused() {
        XCTAssertThrowsError(try ClassFolderMapping.byName(folders: ["n01440764"], classNames: imageNet, root: "/d")) { e in
            XCTAssertTrue("\(e)".contains("/d/n01440764") && "\(e)".contains("matches none") && "\(e)".contains("'goldfish, Carassius auratus'"), "\(e)")
        }
        XCTAssertThrowsError(try ClassFolderMapping.byName(folders: ["crane"], classNames: imageNet, root: "/d")) { e in
            XCTAssertTrue("\(e)".contains("several classes (3 'crane', 4 'crane')") && "\(e)".contains("class_map"), "\(e)")
        }
        XCTAssertThrowsError(try ClassFolderMapping.byName(folders: ["Goldfish", "goldfish"], classNames: imageNet, root: "/d")) { e in
            XCTAssertTrue("\(e)".contains("both match class 1"), "\(e)")
        }
    }

    func testClassMapFormats() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("map-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func map(_ text: String) throws -> ClassMap {
            let url = dir.appendingPathComponent("m")
            try Data(text.utf8).write(to: url)
            return try ClassMap.load(url)
        }
        XCTAssertEqual(try map("# synset index\nn01440764 0\n\nAnkle boot\t9\n").entries, ["n01440764": 0, "Ankle boot": 9])
        XCTAssertEqual(try map(#"{"n01440764": 0, "n01443537": 1}"#).entries, ["n01440764": 0, "n01443537": 1])
        XCTAssertEqual(try map(#" {"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}"#).entries, ["n01440764": 0, "n01443537": 1])
        XCTAssertThrowsError(try map("n01440764\n")) { XCTAssertTrue("\($0)".contains(":1: 'n01440764' is not 'NAME INDEX'"), "\($0)") }
        XCTAssertThrowsError(try map("a 1\na 2\n")) { XCTAssertTrue("\($0)".contains("'a' is mapped twice"), "\($0)") }
        let m = try map("n01443537 1\nn01440764 0\n")
        XCTAssertEqual(try ClassFolderMapping.byClassMap(m, folders: ["n01440764", "n01443537"], classNames: imageNet, root: "/d").classIDs, [0, 1])
        XCTAssertThrowsError(try ClassFolderMapping.byClassMap(m, folders: ["n99"], classNames: imageNet, root: "/d")) {
            XCTAssertTrue("\($0)".contains("does not map the folder /d/n99"), "\($0)")
        }
        XCTAssertThrowsError(try ClassFolderMapping.byClassMap(try map("x 7\n"), folders: ["x"], classNames: imageNet, root: "/d")) {
            XCTAssertTrue("\($0)".contains("class 7; the model has classes 0..<5"), "\($0)")
        }
    }

    func testMappingRelabelsTheDatasetAndKeepsPaths() {
        var ds = ImageDataset(name: "d", height: 1, width: 1, channels: 1, pixels: [0, 1, 2], labels: [0, 1, 1], classNames: ["Pullover", "Trouser"])
        ds.paths = ["Pullover/a.png", "Trouser/b.png", "Trouser/c.png"]
        let m = ClassFolderMapping(folders: ["Pullover", "Trouser"], classIDs: [2, 1], classNames: ["T-shirt/top", "Trouser", "Pullover"], source: .names)
        let mapped = m.apply(to: ds)
        XCTAssertEqual(mapped.labels, [2, 1, 1])
        XCTAssertEqual(mapped.classNames, ["T-shirt/top", "Trouser", "Pullover"])
        XCTAssertEqual(mapped.paths, ds.paths)
        XCTAssertEqual(mapped.prefix(1).paths, ["Pullover/a.png"])
    }
}
