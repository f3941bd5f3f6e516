import Datasets
import Foundation
import Images
import XCTest

/// `ImageFolderExport`: dataset images written as class folders read back (by name) as the same
/// images with the same class ids; existing files are never overwritten.
final class ImageFolderExportTests: XCTestCase {
    /// Six 3x2 gray images, labels 0 1 2 1 0 2, pixel values distinct per image.
    func dataset() -> ImageDataset {
        let labels = [0, 1, 2, 1, 0, 2]
        let pixels = labels.indices.flatMap { i in (0..<6).map { UInt8(i * 40 + $0 * 5) } }
        return ImageDataset(name: "tiny", height: 2, width: 3, channels: 1, pixels: pixels, labels: labels,
                            classNames: ["T-shirt/top", ".hidden", "Ankle boot"])
    }

    func temporaryFolder() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
    }

    func testExportedFoldersReadBackAsTheSameImagesAndClasses() throws {
        let ds = dataset(), root = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let outcome = try ImageFolderExport.write(ds, indices: Array(0..<6), to: root)
        XCTAssertEqual(outcome.folders, ["T-shirt_top", "_hidden", "Ankle boot"])
        XCTAssertEqual(outcome.written.first, "T-shirt_top/00000.png")
        XCTAssertEqual(outcome.written.count, 6)
        let listing = try ImageFolder.files(root)
        XCTAssertEqual(listing.files.count, 6)
        let mapping = try ClassFolderMapping.byName(folders: listing.classNames, classNames: ds.classNames, root: root.path)
        let per = 6
        for (file, folderIndex) in zip(listing.files, listing.labels) {
            let index = Int(file.deletingPathExtension().lastPathComponent)!
            XCTAssertEqual(mapping.classIDs[folderIndex], ds.labels[index], file.path)
            let image = try Image.read(file, channels: 1)
            XCTAssertEqual([image.width, image.height], [3, 2])
            XCTAssertEqual(image.pixels, Array(ds.pixels[(index * per)..<((index + 1) * per)]), file.path)
        }
    }

    func testRepeatedExportKeepsIdenticalFilesAndRefusesDifferentOnesWritingNothing() throws {
        let ds = dataset(), root = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try ImageFolderExport.write(ds, indices: [0, 1, 2], to: root)
        let again = try ImageFolderExport.write(ds, indices: Array(0..<5), to: root)
        XCTAssertEqual(again.unchanged, ["T-shirt_top/00000.png", "_hidden/00001.png", "Ankle boot/00002.png"])
        XCTAssertEqual(again.written, ["_hidden/00003.png", "T-shirt_top/00004.png"])

        let clash = root.appendingPathComponent("Ankle boot/00002.png")
        try Data("someone's file".utf8).write(to: clash)
        XCTAssertThrowsError(try ImageFolderExport.write(ds, indices: Array(0..<6), to: root)) { e in
            XCTAssertTrue("\(e)".contains(clash.path) && "\(e)".contains("not overwritten"), "\(e)")
        }
        XCTAssertEqual(try Data(contentsOf: clash), Data("someone's file".utf8))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Ankle boot/00005.png").path), "nothing written")
    }

    func testClassNamesThatWouldNotMapBackAreRefused() {
        var ds = dataset()
        ds = ImageDataset(name: ds.name, height: 2, width: 3, channels: 1, pixels: ds.pixels, labels: ds.labels,
                          classNames: ["a/b", "a_b", "c"])
        let root = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        XCTAssertThrowsError(try ImageFolderExport.write(ds, indices: Array(0..<6), to: root)) { e in
            XCTAssertTrue("\(e)".contains("'a/b'") && "\(e)".contains("matches the classes"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path))
    }
}
