import Foundation
import XCTest

/// A run over 1,000 classes, ImageNet's count, on the smallest DiT pipeline diffusers saves with
/// num_embeds_ada_norm 1000 (Tests/DiTTests/Fixtures/pipeline1000, `tools/make_dit_fixtures.py
/// pipeline1000`): run folders, resume, shards, merge and report hold up at that size, top-5
/// accuracy is written, and the report lists confusions instead of a 1,000 x 1,000 matrix.
extension CLITests {
    var ditPipeline1000: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiTTests/Fixtures/pipeline1000")
    }

    func testThousandClassRunResumesMergesAndReports() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        // Folders sK match class K by id2label's synonym "sK"; two images each (8 in all).
        let (dir, data) = try imageFolder(["s3", "s17", "s503", "s999"])
        defer { try? fm.removeItem(at: dir) }
        for k in [3, 17, 503, 999] { try fm.copyItem(at: png, to: data.appendingPathComponent("s\(k)/1.png")) }
        let common = ["eval", "--model", ditPipeline1000.path, "--data", data.path, "--leader-gap", "--threads", "1"]
        let full = dir.appendingPathComponent("full").path

        // Half the images, then a killed run's torn last line, then all: a resume.
        let first = try run(common + ["--limit", "4", "--out", full])
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.out.contains("s999/ -> class 999 'synthetic class 999, s999'"), first.out)
        XCTAssertTrue(first.out.contains(", top-5 "), first.out)
        let results = URL(fileURLWithPath: full + "/results.jsonl")
        let four = try Data(contentsOf: results)
        try four.prefix(four.count - 100).write(to: results)
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: full + "/settings.json"))) as! [String: Any]
        XCTAssertEqual(settings["classes"] as? Int, 1000)
        let rest = try run(common + ["--out", full])
        XCTAssertEqual(rest.status, 0, rest.err)
        let lines = try resultLines(full, dropping: ["seconds"])
        XCTAssertEqual(lines.count, 8)
        XCTAssertEqual(try Data(contentsOf: results).prefix(four.count - 100), four.prefix(four.count - 100), "finished lines kept")
        XCTAssertEqual(lines.map { $0["label"] as? Int }, [17, 17, 3, 3, 503, 503, 999, 999], "folders in name order")
        for line in lines {
            XCTAssertEqual((line["mean_errors"] as? [Double])?.count, 1000)
            XCTAssertEqual((line["probabilities"] as? [Double])?.count, 1000)
            let scores = try XCTUnwrap(line["scores"] as? [Int])
            XCTAssertEqual(line["calls"] as? Int, scores.reduce(0, +))
            XCTAssertTrue(scores.allSatisfy { $0 >= 5 }, "every class on the first 5 shared probes")
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: full + "/summary.json"))) as! [String: Any]
        XCTAssertNil(summary["confusion"], "no dense 1,000 x 1,000 matrix in summary.json")
        XCTAssertEqual((summary["class_names"] as? [String])?.count, 1000)
        let top5 = try XCTUnwrap(summary["top5_accuracy"] as? Double)
        XCTAssertGreaterThanOrEqual(top5, try XCTUnwrap(summary["accuracy"] as? Double))

        // Two shards, merged: the full run's lines.
        var shards: [String] = []
        for i in 0..<2 {
            let out = dir.appendingPathComponent("shard\(i)").path
            let r = try run(common + ["--shard", "\(i)/2", "--out", out])
            XCTAssertEqual(r.status, 0, r.err)
            shards.append(out)
        }
        let merged = dir.appendingPathComponent("merged").path
        let m = try run(["merge"] + shards + ["--out", merged])
        XCTAssertEqual(m.status, 0, m.err)
        XCTAssertTrue(m.out.contains("merged 8 images") && m.out.contains(", top-5 "), m.out)
        XCTAssertEqual(NSArray(array: try resultLines(merged, dropping: ["seconds"])), NSArray(array: lines))
        let mergedSummary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: merged + "/summary.json"))) as! [String: Any]
        XCTAssertEqual(mergedSummary["top5_accuracy"] as? Double, top5)

        // The report: top-5 in the headline, the confusions as a short table, per-class bars for
        // the classes with images only; a page of a few tens of kilobytes.
        let rep = try run(["report", merged])
        XCTAssertEqual(rep.status, 0, rep.err)
        let page = try String(contentsOfFile: merged + "/report.html", encoding: .utf8)
        XCTAssertTrue(page.contains(", top-5 <strong>"))
        XCTAssertTrue(page.contains("Most frequent confusions"))
        XCTAssertFalse(page.contains("Confusion matrix"))
        XCTAssertTrue(page.contains("4 of 1000 classes have images"))
        XCTAssertTrue(page.contains("synthetic class 999, s999 (2)"))
        XCTAssertLessThan(page.components(separatedBy: "<rect ").count, 200, "no 1,000 x 1,000 cells")
        XCTAssertLessThan(page.utf8.count, 200_000)
    }
}
