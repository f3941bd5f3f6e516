import Foundation
import XCTest

/// `eval --data DIR` on an image folder: each class folder is matched to the model's classes by
/// name (or a class map, or folder order when asked), never silently by position.
extension CLITests {
    var shippedModel: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("models/fashion-mnist")
    }

    /// A temporary folder with `data/NAME/0.png` for each name; the caller removes it.
    func imageFolder(_ names: [String]) throws -> (dir: URL, data: URL) {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        let data = dir.appendingPathComponent("data")
        for n in names {
            try fm.createDirectory(at: data.appendingPathComponent(n), withIntermediateDirectories: true)
            try fm.copyItem(at: png, to: data.appendingPathComponent("\(n)/0.png"))
        }
        return (dir, data)
    }

    /// The user's case: folders Pullover/ and Trouser/ are Fashion-MNIST classes 2 and 1 (not 0
    /// and 1 by folder order); the header says so and each line names the image and its classes.
    func testPulloverAndTrouserFoldersBecomeClassesTwoAndOne() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, data) = try imageFolder(["Pullover", "Trouser"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let r = try run(["eval", "--model", shippedModel.path, "--data", data.path, "--n-timesteps", "1", "--out", out, "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("class folders by name, 2 of the model's 10 classes"), r.out)
        XCTAssertTrue(r.out.contains("Pullover/ -> class 2 'Pullover'") && r.out.contains("Trouser/ -> class 1 'Trouser'"), r.out)
        let lines = try resultLines(out, dropping: [])
        XCTAssertEqual(lines.map { $0["label"] as? Int }, [2, 1])
        XCTAssertEqual(lines.map { $0["path"] as? String }, ["Pullover/0.png", "Trouser/0.png"])
        XCTAssertEqual(lines.map { $0["label_name"] as? String }, ["Pullover", "Trouser"])
        for line in lines {
            let prediction = try XCTUnwrap(line["prediction"] as? Int)
            XCTAssertEqual(line["prediction_name"] as? String, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                                                 "Sneaker", "Bag", "Ankle boot"][prediction])
            XCTAssertEqual((line["probabilities"] as? [Double])?.count, 10)
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as! [String: Any]
        XCTAssertEqual((summary["class_names"] as? [String])?.count, 10)
        XCTAssertEqual((summary["settings"] as? [String: Any])?["classes"] as? Int, 10)
    }

    /// Names match ignoring case and punctuation ("ankle_boot", "t-shirt_top"); a folder matching
    /// no class is refused naming it and the expected names, with nothing written.
    func testFolderNamesMatchLooselyAndUnknownOnesAreRefused() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, data) = try imageFolder(["ankle_boot", "t-shirt_top"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let ok = try run(["eval", "--model", shippedModel.path, "--data", data.path, "--n-timesteps", "1", "--out", out, "--threads", "1"])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertEqual(try resultLines(out, dropping: []).map { $0["label"] as? Int }, [9, 0])

        try FileManager.default.createDirectory(at: data.appendingPathComponent("Jacket"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: png, to: data.appendingPathComponent("Jacket/0.png"))
        let other = dir.appendingPathComponent("other").path
        let bad = try run(["eval", "--model", shippedModel.path, "--data", data.path, "--n-timesteps", "1", "--out", other])
        XCTAssertEqual(bad.status, 2, bad.err)
        for word in [data.appendingPathComponent("Jacket").path, "'Jacket' matches none", "'T-shirt/top'", "'Ankle boot'", "--class-map"] {
            XCTAssertTrue(bad.err.contains(word), "'\(word)' not in: \(bad.err)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: other))
    }

    /// A model without class names: the folders are refused unless mapped explicitly, by
    /// `--labels`, `--class-map` (text and JSON) or `--folder-order`.
    func testModelWithoutClassNamesNeedsAnExplicitMapping() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, data) = try imageFolder(["cat", "dog"])
        defer { try? fm.removeItem(at: dir) }
        let model = try tinyModelFolder(in: dir)
        let common = ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "1", "--threads", "1"]
        func labels(_ extra: [String], _ name: String) throws -> [Int?] {
            let r = try run(common + extra + ["--out", dir.appendingPathComponent(name).path])
            XCTAssertEqual(r.status, 0, r.err)
            return try resultLines(dir.appendingPathComponent(name).path, dropping: []).map { $0["label"] as? Int }
        }
        let refused = try run(common + ["--out", dir.appendingPathComponent("none").path])
        XCTAssertEqual(refused.status, 2)
        for word in ["has no class names", "--labels", "--class-map", "--folder-order", "cat, dog"] {
            XCTAssertTrue(refused.err.contains(word), "'\(word)' not in: \(refused.err)")
        }
        XCTAssertFalse(fm.fileExists(atPath: dir.appendingPathComponent("none").path))

        XCTAssertEqual(try labels(["--folder-order"], "order"), [0, 1])
        XCTAssertEqual(try labels(["--labels", "bird,dog,cat"], "labels"), [2, 1])
        let map = dir.appendingPathComponent("map.txt")
        try Data("# folder class\ncat 3\ndog 0\n".utf8).write(to: map)
        XCTAssertEqual(try labels(["--labels", "w,x,y,z", "--class-map", map.path], "map"), [3, 0])
        let json = dir.appendingPathComponent("map.json")
        try Data(#"{"0": ["cat", "tabby"], "1": ["dog", "hound"]}"#.utf8).write(to: json)
        XCTAssertEqual(try labels(["--labels", "w,x,y,z", "--class-map", json.path], "keras"), [0, 1])

        // A map lacking a folder, and a class map without class names, are refused.
        try Data("cat 1\n".utf8).write(to: map)
        let lacking = try run(common + ["--labels", "w,x,y,z", "--class-map", map.path, "--out", dir.appendingPathComponent("x").path])
        XCTAssertEqual(lacking.status, 2)
        XCTAssertTrue(lacking.err.contains(map.path) && lacking.err.contains(data.appendingPathComponent("dog").path), lacking.err)
        let nameless = try run(common + ["--class-map", map.path, "--out", dir.appendingPathComponent("y").path])
        XCTAssertEqual(nameless.status, 2)
        XCTAssertTrue(nameless.err.contains("--class-map") && nameless.err.contains("no class names"), nameless.err)
    }
}
