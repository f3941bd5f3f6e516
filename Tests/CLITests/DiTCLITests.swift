import Foundation
import XCTest

/// `eval` and `classify` on a DiT pipeline folder saved by diffusers (the DiT tests' fixture: a
/// tiny random DiTTransformer2DModel with learned sigma, a tiny VAE, a DDIMScheduler, id2label of
/// 4 ImageNet names), on an ImageNet-style tree of synset folders.
extension CLITests {
    var ditPipeline: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiTTests/Fixtures/pipeline")
    }

    func testDiTEvalOnSynsetFoldersWithClassMapResumesAndClassifyAgrees() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, data) = try imageFolder(["n01440764", "n01491361"])
        defer { try? fm.removeItem(at: dir) }
        let common = ["eval", "--model", ditPipeline.path, "--data", data.path, "--n-timesteps", "4", "--threads", "1"]
        let out = dir.appendingPathComponent("run").path

        let unmapped = try run(common + ["--out", out])
        XCTAssertEqual(unmapped.status, 2)
        XCTAssertTrue(unmapped.err.contains("'n01440764' matches none") && unmapped.err.contains("'tench, Tinca tinca'"), unmapped.err)
        XCTAssertFalse(fm.fileExists(atPath: out))

        let map = dir.appendingPathComponent("synsets.txt")
        try Data("n01440764 0\nn01443537 1\nn01491361 3\n".utf8).write(to: map)
        let r = try run(common + ["--class-map", map.path, "--out", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("n01491361/ -> class 3 'tiger shark, Galeocerdo cuvieri'"), r.out)
        let lines = try resultLines(out, dropping: ["seconds"])
        XCTAssertEqual(lines.map { $0["label"] as? Int }, [0, 3])
        XCTAssertEqual(lines.map { $0["path"] as? String }, ["n01440764/0.png", "n01491361/0.png"])
        XCTAssertEqual(lines.map { $0["calls"] as? Int }, [16, 16])
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/settings.json"))) as! [String: Any]
        XCTAssertEqual(settings["classes"] as? Int, 4)
        XCTAssertEqual(settings["image_size"] as? Int, 16)

        // Rerun: resumes (nothing recomputed, same lines).
        let again = try run(common + ["--class-map", map.path, "--out", out])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try resultLines(out, dropping: ["seconds"]).count, 2)

        // classify --json on the same file (image index 0 in both) gives the same errors.
        let c = try run(["classify", "--model", ditPipeline.path, "--n-timesteps", "4", "--json", "--threads", "1",
                         data.appendingPathComponent("n01440764/0.png").path])
        XCTAssertEqual(c.status, 0, c.err)
        let answer = try JSONSerialization.jsonObject(with: Data(c.out.utf8)) as! [String: Any]
        XCTAssertEqual(answer["mean_errors"] as? [Double], lines[0]["mean_errors"] as? [Double])
        XCTAssertEqual(answer["prediction"] as? Int, lines[0]["prediction"] as? Int)
        XCTAssertEqual((answer["probabilities"] as? [Double])?.count, 4)

        // --labels-file replaces id2label; a wrong count is refused naming the field.
        let names = dir.appendingPathComponent("names.txt")
        try Data("a\nb\nc\n".utf8).write(to: names)
        let wrong = try run(["classify", "--model", ditPipeline.path, "--labels-file", names.path, data.appendingPathComponent("n01440764/0.png").path])
        XCTAssertEqual(wrong.status, 2)
        XCTAssertTrue(wrong.err.contains("num_embeds_ada_norm is 4"), wrong.err)
    }
}
