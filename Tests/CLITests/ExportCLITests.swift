import Foundation
import XCTest

/// `diffclass export`: dataset images as class folders that `eval --data DIR` maps back to their
/// classes by name; bad flags are named; existing files are not overwritten.
extension CLITests {
    var idxFixture: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/idx") }

    func testExportWritesClassFoldersThatEvalReadsAsTheSameClasses() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let model = try tinyModelFolder(in: dir)
        let out = dir.appendingPathComponent("images").path
        // The fixture's labels are 0 1 2 3 1 2; class 0's name has a slash, as Fashion-MNIST's 'T-shirt/top'.
        let r = try run(["export", "--data", idxFixture.path, "--split", "train", "--labels", "w/top,x,y,z", "--out", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("6 images of mnist-format train -> \(out): 6 written"), r.out)
        XCTAssertTrue(r.out.contains("w_top/ (1), x/ (2), y/ (2), z/ (1)"), r.out)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: out + "/x").sorted(), ["00001.png", "00004.png"])

        let run1 = dir.appendingPathComponent("run").path
        let e = try run(["eval", "--model", model.path, "--data", out, "--labels", "w/top,x,y,z", "--n-timesteps", "1", "--out", run1, "--threads", "1"])
        XCTAssertEqual(e.status, 0, e.err)
        XCTAssertTrue(e.out.contains("w_top/ -> class 0 'w/top'"), e.out)
        let lines = try resultLines(run1, dropping: [])
        XCTAssertEqual(lines.map { $0["path"] as? String }, ["w_top/00000.png", "x/00001.png", "x/00004.png", "y/00002.png", "y/00005.png", "z/00003.png"])
        XCTAssertEqual(lines.map { $0["label"] as? Int }, [0, 1, 1, 2, 2, 3])

        // Again: the same files are kept; a file with other contents is refused and nothing is written.
        let again = try run(["export", "--data", idxFixture.path, "--split", "train", "--labels", "w/top,x,y,z", "--limit", "3", "--out", out])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("0 written, 3 already there"), again.out)
        try fm.removeItem(atPath: out + "/y/00005.png")
        try Data("mine".utf8).write(to: URL(fileURLWithPath: out + "/z/00003.png"))
        let clash = try run(["export", "--data", idxFixture.path, "--split", "train", "--labels", "w/top,x,y,z", "--out", out])
        XCTAssertEqual(clash.status, 2)
        XCTAssertTrue(clash.err.contains(out + "/z/00003.png") && clash.err.contains("not overwritten"), clash.err)
        XCTAssertFalse(fm.fileExists(atPath: out + "/y/00005.png"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/z/00003.png")), Data("mine".utf8))
    }

    func testExportNamesBadFlags() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let out = dir.appendingPathComponent("x").path
        let idx = ["--data", idxFixture.path, "--split", "train"]
        let model = try tinyModelFolder(in: dir)   // no class names
        let cases: [([String], [String])] = [
            (idx, ["--out"]),
            (["--data", idxFixture.path, "--split", "validation", "--out", out], ["--split", "'validation'"]),
            (idx + ["--limit", "0", "--out", out], ["--limit", "an integer in 1...10000000", "'0'"]),
            (idx + ["--frobnicate", "--out", out], ["unknown option --frobnicate for 'export'"]),
            (["--out", out], ["--dataset", "--data"]),
            (["--dataset", "mnist", "--out", out], ["unknown dataset 'mnist'"]),
            (idx + ["--labels", "a,b", "--out", out], ["--labels", "2 class names", "labels up to 3"]),
            (idx + ["--model", model.path, "--out", out], ["--model", model.path, "no class names"]),
            (["--data", dir.path, "--out", out], [dir.path]),
        ]
        for (args, words) in cases {
            let r = try run(["export"] + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.out) \(r.err)")
            for w in words { XCTAssertTrue(r.err.contains(w), "'\(w)' not in: \(r.err)") }
            XCTAssertFalse(fm.fileExists(atPath: out), "\(args): wrote \(out)")
        }
    }

    /// The README's first run: ten Fashion-MNIST test images exported, then classified as a folder
    /// by the shipped model, each folder matched to its class (needs Debian's dataset-fashion-mnist).
    func testFashionMNISTExportIsClassifiedAsAFolder() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"), "dataset-fashion-mnist not installed")
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        let out = dir.appendingPathComponent("images").path
        let r = try run(["export", "--dataset", "fashion-mnist", "--limit", "10", "--out", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: out).sorted(),
                       ["Ankle boot", "Coat", "Pullover", "Sandal", "Shirt", "Sneaker", "Trouser"])
        let run1 = dir.appendingPathComponent("run").path
        let e = try run(["eval", "--model", shippedModel.path, "--data", out, "--n-timesteps", "1", "--out", run1, "--threads", "1"])
        XCTAssertEqual(e.status, 0, e.err)
        XCTAssertTrue(e.out.contains("(calibrated: "), e.out)
        // Fashion-MNIST's first ten test labels, in the folders' order.
        let lines = try resultLines(run1, dropping: [])
        let firstTestLabels = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
        for line in lines {
            let path = try XCTUnwrap(line["path"] as? String)
            let index = Int(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)!
            XCTAssertEqual(line["label"] as? Int, firstTestLabels[index], path)
        }
        XCTAssertEqual(lines.count, 10)
    }
}
