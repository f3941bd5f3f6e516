import Foundation
import XCTest

/// `diffclass zeroshot` and `eval` on the tiny Stable Diffusion pipeline folder
/// (Tests/StableDiffusionTests/Fixtures/pipeline: random pieces, 16x16 images -> 8x8 latents).
extension CLITests {
    var pipeline: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("StableDiffusionTests/Fixtures/pipeline")
    }
    var image: URL { pipeline.appendingPathComponent("image.png") }

    func testZeroShotCLIPrintsLabelsAndPerTimestepErrors() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let text = try run(["zeroshot", "--model", pipeline.path, "--labels", "cat,dog,bird", "--image-size", "16",
                                "--stages", "2:4,1:8", image.path])
        XCTAssertEqual(text.status, 0, text.err)
        XCTAssertTrue(text.out.contains("\(image.path): "), text.out)
        XCTAssertTrue(text.out.contains("20 calls"), text.out)  // 3 classes x 4 timesteps, then 2 x 4 new ones
    }

    func testZeroShotCLIJSONAndErrors() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let labelsFile = dir.appendingPathComponent("labels.txt")
        try Data("cat\n\ndog\n".utf8).write(to: labelsFile)
        let r = try run(["zeroshot", "--model", pipeline.path, "--labels-file", labelsFile.path, "--image-size", "16",
                             "--timesteps", "10,500,900", "--loss", "l1", "--seed", "3", "--json", image.path])
        XCTAssertEqual(r.status, 0, r.err)
        let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertEqual(object["calls"] as? Int, 6)
        let errors = try XCTUnwrap(object["errors"] as? [[String: Any]])
        XCTAssertEqual(errors.count, 2)
        XCTAssertEqual(errors[0]["timesteps"] as? [Int], [10, 500, 900])
        XCTAssertEqual((errors[1]["errors"] as? [Double])?.count, 3)
        XCTAssertTrue(["cat", "dog"].contains(object["class_name"] as? String ?? ""))

        let noLabels = try run(["zeroshot", "--model", pipeline.path, image.path])
        XCTAssertEqual(noLabels.status, 2)
        XCTAssertTrue(noLabels.err.contains("--labels"), noLabels.err)
        let badTemplate = try run(["zeroshot", "--model", pipeline.path, "--labels", "a,b", "--template", "no slot", "--image-size", "16", image.path])
        XCTAssertEqual(badTemplate.status, 2)
        XCTAssertTrue(badTemplate.err.contains("--template"), badTemplate.err)
        let notPipeline = try run(["zeroshot", "--model", dir.path, "--labels", "a,b", image.path])
        XCTAssertEqual(notPipeline.status, 2)
        XCTAssertTrue(notPipeline.err.contains("tokenizer/vocab.json"), notPipeline.err)
    }

    func testZeroShotEvalOnImageFolderResumes() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("zse-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        for cls in ["cat", "dog"] {
            try fm.createDirectory(at: dir.appendingPathComponent("data/\(cls)"), withIntermediateDirectories: true)
            try fm.copyItem(at: image, to: dir.appendingPathComponent("data/\(cls)/x.png"))
        }
        let args = ["eval", "--model", pipeline.path, "--data", dir.appendingPathComponent("data").path, "--image-size", "16",
                    "--n-timesteps", "3", "--out", dir.appendingPathComponent("run").path]
        let first = try run(args)
        XCTAssertEqual(first.status, 0, first.err)
        let results = try String(contentsOf: dir.appendingPathComponent("run/results.jsonl"), encoding: .utf8)
        XCTAssertEqual(results.split(separator: "\n").count, 2)
        let settings = try String(contentsOf: dir.appendingPathComponent("run/settings.json"), encoding: .utf8)
        XCTAssertTrue(settings.contains("a photo of a dog."), settings)
        let again = try run(args)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("run/results.jsonl"), encoding: .utf8), results)
        let changed = try run(args + ["--template", "a {} photo"])
        XCTAssertEqual(changed.status, 2)
        XCTAssertTrue(changed.err.contains("settings.json"), changed.err)
        let wrongCount = try run(args + ["--labels", "a,b,c"])
        XCTAssertEqual(wrongCount.status, 2)
        XCTAssertTrue(wrongCount.err.contains("--labels"), wrongCount.err)
    }

    /// `--weights-dtype fp16`: the fixture's U-Net and VAE are F16, its text encoder F32, so the
    /// errors move by the fp16 rounding of the text encoder only (well under 1e-2 relative);
    /// eval records the storage in settings.json (a changed one does not resume); a bad value is named.
    func testZeroShotWeightsDtype() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let base = ["zeroshot", "--model", pipeline.path, "--labels", "cat,dog", "--image-size", "16", "--timesteps", "10,500", "--json"]
        let full = try run(base + [image.path]), half = try run(base + ["--weights-dtype", "fp16", image.path])
        XCTAssertEqual(full.status, 0, full.err)
        XCTAssertEqual(half.status, 0, half.err)
        let a = try JSONSerialization.jsonObject(with: Data(full.out.utf8)) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(half.out.utf8)) as! [String: Any]
        let ea = try XCTUnwrap(a["mean_errors"] as? [Double]), eb = try XCTUnwrap(b["mean_errors"] as? [Double])
        for (x, y) in zip(ea, eb) { XCTAssertEqual(x, y, accuracy: 1e-2 * abs(x)) }
        let bad = try run(base + ["--weights-dtype", "fp8", image.path])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("--weights-dtype") && bad.err.contains("fp8"), bad.err)

        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("zsw-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        for cls in ["cat", "dog"] {
            try fm.createDirectory(at: dir.appendingPathComponent("data/\(cls)"), withIntermediateDirectories: true)
            try fm.copyItem(at: image, to: dir.appendingPathComponent("data/\(cls)/x.png"))
        }
        let args = ["eval", "--model", pipeline.path, "--data", dir.appendingPathComponent("data").path, "--image-size", "16",
                    "--n-timesteps", "2", "--out", dir.appendingPathComponent("run").path]
        let first = try run(args + ["--weights-dtype", "bf16"])
        XCTAssertEqual(first.status, 0, first.err)
        let settings = try String(contentsOf: dir.appendingPathComponent("run/settings.json"), encoding: .utf8)
        XCTAssertTrue(settings.contains("bf16"), settings)
        let changed = try run(args)
        XCTAssertEqual(changed.status, 2)
        XCTAssertTrue(changed.err.contains("settings.json"), changed.err)
    }

    /// `robust --model SD_DIR`: the attacks run on the pipeline (through the VAE), RDC with the
    /// empty prompt as its unconditional model; the prompts and image size are in settings.json,
    /// a rerun resumes and a changed template is refused.
    func testRobustOnStableDiffusionPipeline() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("zsr-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dir) }
        for cls in ["cat", "dog"] {
            try fm.createDirectory(at: dir.appendingPathComponent("data/\(cls)"), withIntermediateDirectories: true)
            try fm.copyItem(at: image, to: dir.appendingPathComponent("data/\(cls)/x.png"))
        }
        let out = dir.appendingPathComponent("run").path
        let args = ["robust", "--model", pipeline.path, "--data", dir.appendingPathComponent("data").path, "--image-size", "16",
                    "--n-timesteps", "2", "--attacks", "apgd-ce", "--iterations", "1", "--eps", "8/255", "--lm", "steps=1",
                    "--out", out]
        let first = try run(args)
        XCTAssertEqual(first.status, 0, first.err)
        let lines = try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8)
        XCTAssertEqual(lines.split(separator: "\n").count, 2)
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/settings.json"))) as! [String: Any]
        XCTAssertEqual(settings["prompts"] as? [String], ["a photo of a cat.", "a photo of a dog."])
        XCTAssertEqual(settings["image_size"] as? Int, 16)
        XCTAssertEqual(settings["kind"] as? String, "robust")
        XCTAssertNotNil(settings["lm"] as? String)
        let again = try run(args)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8), lines)
        let changed = try run(args + ["--template", "a {} photo"])
        XCTAssertEqual(changed.status, 2)
        XCTAssertTrue(changed.err.contains("settings.json") && changed.err.contains("prompts"), changed.err)
    }
}
