import Foundation
import XCTest

/// `train --precond edm` writes an EDM folder that `eval`, `classify` and `sample` take.
extension CLITests {
    func testTrainWithEDMPreconditioningWritesAnEDMFolderThatClassifiesAndSamples() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, _, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("edm").path
        let train = try run(["train", "--precond", "edm", "--data", data.path, "--out", model, "--steps", "2", "--batch-size", "2",
                             "--warmup", "1"])
        XCTAssertEqual(train.status, 0, train.err)
        XCTAssertTrue(train.out.contains("EDMPrecond(SongUNet)"), train.out)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as! [String: Any]
        XCTAssertEqual(config["precond"] as? String, "edm")
        XCTAssertEqual(config["label_dim"] as? Int, 4)
        XCTAssertEqual(config["img_resolution"] as? Int, 28)  // --data folders are read at 28x28
        XCTAssertEqual(try String(contentsOfFile: model + "/class_names.txt", encoding: .utf8), "a\nb\nc\nd\n")

        // Resumes from its checkpoint to more steps.
        let more = try run(["train", "--precond", "edm", "--data", data.path, "--out", model, "--steps", "3", "--batch-size", "2",
                            "--warmup", "1", "--resume"])
        XCTAssertEqual(more.status, 0, more.err)
        XCTAssertTrue(more.out.contains("resumed from") && more.out.contains("at step 3"), more.out)

        let out = dir.appendingPathComponent("run").path
        let eval = try run(["eval", "--model", model, "--data", data.path, "--sigmas", "0.1:2:3", "--out", out])
        XCTAssertEqual(eval.status, 0, eval.err)
        XCTAssertEqual(try resultLines(out, dropping: []).count, 4)

        let sheet = dir.appendingPathComponent("samples.png").path
        let sample = try run(["sample", "--model", model, "--out", sheet, "--n", "2", "--steps", "3"])
        XCTAssertEqual(sample.status, 0, sample.err)
        XCTAssertTrue(sample.out.contains("EDM Heun 3 steps (5 network calls each)"), sample.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: sheet))

        for (args, named) in [
            (["train", "--precond", "edx", "--data", data.path, "--out", dir.path + "/x"], "--precond"),
            (["train", "--precond", "edm", "--schedule", "linear", "--data", data.path, "--out", dir.path + "/x"], "--schedule"),
            (["sample", "--model", model, "--out", sheet, "--guidance", "2"], "--guidance"),
            (["sample", "--model", model, "--out", sheet, "--class", "5"], "--class"),
        ] {
            let r = try run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(named), "\(args): \(r.err)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/x"))
    }
}
