import Foundation
import XCTest

/// Inputs that used to give a wrong answer with exit 0: each is now refused with exit 2, naming the
/// flag or file, before a run folder is written.
extension CLITests {
    /// A hand-made safetensors file of one F32 tensor.
    func safetensorsBytes(name: String, shape: [Int], values: [Float]) -> Data {
        var header = "{\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[0,\(values.count * 4)]}}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(header.utf8))
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    /// The tiny model's last class embedding is the null class: five labels, or five class
    /// folders, for its four classes are refused instead of scoring the null class as a class.
    func testTheNullClassIsNeverACandidate() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        let labels = try run(["classify", "--model", model.path, "--n-timesteps", "2", "--labels", "a,b,c,d,e", png.path])
        XCTAssertEqual(labels.status, 2, labels.err)
        XCTAssertTrue(labels.err.contains("--labels"), labels.err)
        XCTAssertEqual(labels.out, "")
        try fm.createDirectory(at: data.appendingPathComponent("e"), withIntermediateDirectories: true)
        try fm.copyItem(at: png, to: data.appendingPathComponent("e/0.png"))
        try fm.removeItem(at: model.appendingPathComponent("class_names.txt"))
        let out = dir.appendingPathComponent("run")
        let folders = try run(evalArgs(model, data, out: out, timesteps: 2, extra: ["--folder-order"]))
        XCTAssertEqual(folders.status, 2, folders.err)
        XCTAssertTrue(folders.err.contains("null class") && folders.err.contains("has 5"), folders.err)
        XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent("settings.json").path))
    }

    /// A NaN weight is refused at load, naming the weights file and the tensor (it used to give a
    /// uniform answer with exit 0, and `loss` printed nan); a NaN in `--noise` is refused before
    /// settings.json or results.jsonl is written.
    func testNaNWeightsAndNoiseAreRefusedNamingTheFileAndTensor() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        // --noise with a NaN: refused, nothing written.
        let noise = dir.appendingPathComponent("noise.safetensors")
        var eps = [Float](repeating: 0.5, count: 2 * 64)
        eps[70] = .nan
        try safetensorsBytes(name: "eps", shape: [2, 1, 8, 8], values: eps).write(to: noise)
        let out = dir.appendingPathComponent("run")
        let n = try run(evalArgs(model, data, out: out, timesteps: 2, extra: ["--noise", noise.path]))
        XCTAssertEqual(n.status, 2, n.err)
        XCTAssertTrue(n.err.contains(noise.path) && n.err.contains("'eps'") && n.err.contains("element 70"), n.err)
        XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent("settings.json").path))
        XCTAssertFalse(fm.fileExists(atPath: out.appendingPathComponent("results.jsonl").path))

        // A NaN, then an infinity, in the first F32 tensor of the weights.
        let weights = model.appendingPathComponent("diffusion_pytorch_model.safetensors")
        let original = try Data(contentsOf: weights)
        let headerLength = Int(original.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: original.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let (tensor, entry) = header.compactMap { k, v -> (String, [String: Any])? in
            guard let e = v as? [String: Any], e["dtype"] as? String == "F32" else { return nil }
            return (k, e)
        }.sorted { $0.0 < $1.0 }[0]
        let begin = (entry["data_offsets"] as! [Int])[0]
        for bad in [Float.nan, -Float.infinity] {
            var damaged = original
            withUnsafeBytes(of: bad.bitPattern.littleEndian) { damaged.replaceSubrange((8 + headerLength + begin)..<(12 + headerLength + begin), with: $0) }
            try damaged.write(to: weights)
            let c = try run(["classify", "--model", model.path, "--n-timesteps", "2", png.path])
            XCTAssertEqual(c.status, 2, c.err)
            XCTAssertTrue(c.err.contains(weights.path) && c.err.contains("'\(tensor)'") && c.err.contains("NaN or infinite"), c.err)
            XCTAssertEqual(c.out, "")
            let l = try run(["loss", "--model", model.path, "--data", data.path, "--split", "train", "--limit", "1"])
            XCTAssertEqual(l.status, 2, l.err)
            XCTAssertTrue(l.err.contains("'\(tensor)'"), l.err)
            XCTAssertFalse(l.out.contains("nan"), l.out)
        }
    }

    /// `--weighting exp:1e4` underflows every weight but t = 0 to 0 (every class then scored 0):
    /// refused naming the flag, before the run folder is written.
    func testAnUnderflowingWeightingIsRefused() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        let r = try run(evalArgs(model, data, out: out, timesteps: 2, extra: ["--weighting", "exp:1e4"]))
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("--weighting") && r.err.contains("underflow"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("settings.json").path))
        let ok = try run(evalArgs(model, data, out: out, timesteps: 2, extra: ["--weighting", "exp:50", "--limit", "1"]))
        XCTAssertEqual(ok.status, 0, ok.err)
    }
}

extension CLITests {
    /// Values that used to be accepted without a word and give a meaningless run: each is refused
    /// with exit 2, naming the flag and what was expected, before the run folder is created.
    func testMistakenValuesAreRefusedNamingTheFlag() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()   // 4 classes
        defer { try? fm.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        let base = ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--threads", "1"]
        let cases: [([String], [String])] = [
            (["--tau", "0"], ["--tau", "positive"]),
            (["--leader-gap", "--gap", "0"], ["--gap", "positive"]),
            (["--stages", "5:2,1:4"], ["--stages", "keeps 5 classes, there are 4"]),
            (["--stages", "2:2,3:4"], ["--stages", "must not grow"]),
            (["--ttest", "--min-scores", "8", "--max-scores", "4"], ["--min-scores 8", "--max-scores"]),
            (["--leader-gap", "--min-scores", "60"], ["--min-scores 60", "(its default)"]),
            (["--timesteps", "1,,2"], ["--timesteps", "'1,,2'"]),
            (["--n-timesteps", "2", "stray"], ["unexpected argument 'stray' for 'eval'"]),
        ]
        for (extra, words) in cases {
            let r = try run(base + extra + ["--out", out.path])
            XCTAssertEqual(r.status, 2, "\(extra): \(r.out) \(r.err)")
            for w in words { XCTAssertTrue(r.err.contains(w), "\(extra): '\(w)' not in: \(r.err)") }
            XCTAssertFalse(fm.fileExists(atPath: out.path), "\(extra): created \(out.path)")
        }
        // --out "" (an unset shell variable) used to write the run into the working folder.
        let empty = try run(base + ["--n-timesteps", "2", "--out", ""])
        XCTAssertEqual(empty.status, 2, empty.err)
        XCTAssertTrue(empty.err.contains("--out needs a value, got an empty one"), empty.err)
        // classify still takes its files; a good eval still runs.
        let files = try run(["classify", "--model", model.path, "--n-timesteps", "2", png.path])
        XCTAssertEqual(files.status, 0, files.err)
        let ok = try run(base + ["--stages", "4:2,1:4", "--out", out.path])
        XCTAssertEqual(ok.status, 0, ok.err)
    }
}
