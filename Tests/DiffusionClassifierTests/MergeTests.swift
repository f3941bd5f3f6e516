import DiffusionClassifier
import Foundation
import XCTest

final class MergeTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws { tmp = try temporaryDirectory("merge") }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    let model = tinyModel(classes: 3)
    let images = randomImages(5)
    let labels = [0, 2, 1, 1, 0]

    func settings(seed: UInt64 = 5) -> EvaluationSettings {
        EvaluationSettings(model: "tiny", dataset: "random", split: "test", classes: 3, schedule: schedule(), method: .staged(try! StagedElimination(parsing: "2:2,1:4").stages), seed: seed)
    }

    func url(_ dir: String) -> URL { tmp.appendingPathComponent(dir) }

    @discardableResult
    func run(_ dir: String, scope: RunScope, settings s: EvaluationSettings? = nil) throws -> EvaluationSummary {
        let s = s ?? settings()
        let r = try EvaluationRun(directory: url(dir), settings: s)
        let c = try s.makeClassifier(model: model, schedule: schedule(), batchSize: 4)
        return try r.run(indices: scope.indices(datasetCount: images.count), labels: labels, classNames: ["a", "b", "c"], scope: scope,
                         batchSize: 4, image: { self.images[$0] }, classify: { try c.classify($0, imageIndex: $1) })
    }

    /// Rewrites a run's results with `seconds` = 0, so runs can be compared byte for byte.
    func zeroTimes(_ dir: String) throws {
        let file = url(dir).appendingPathComponent("results.jsonl")
        var out = Data()
        for (r, _) in try EvaluationRun.parseResults(try Data(contentsOf: file), path: file.path) { out.append(try r.withoutTiming.line()) }
        try out.write(to: file)
    }

    func testTwoShardsMergedEqualTheUnshardedRun() throws {
        let full = try run("full", scope: RunScope())
        try run("s0", scope: RunScope(shard: (0, 2)))
        try run("s1", scope: RunScope(shard: (1, 2)))
        for d in ["full", "s0", "s1"] { try zeroTimes(d) }
        let report = try EvaluationRun.merge([url("s1"), url("s0")], into: url("merged"))
        XCTAssertEqual(report.counts, [2, 3])
        XCTAssertEqual(report.missing, [])
        XCTAssertEqual(try Data(contentsOf: url("merged/results.jsonl")), try Data(contentsOf: url("full/results.jsonl")))
        XCTAssertEqual(try Data(contentsOf: url("merged/settings.json")), try Data(contentsOf: url("full/settings.json")))
        let s = report.summary
        XCTAssertEqual(s.n, 5)
        XCTAssertEqual(s.accuracy, full.accuracy)
        XCTAssertEqual(s.perClassAccuracy, full.perClassAccuracy)
        XCTAssertEqual(s.meanCalls, full.meanCalls)
        XCTAssertEqual(s.classNames, ["a", "b", "c"])
        XCTAssertNil(s.shard)
        XCTAssertTrue(FileManager.default.fileExists(atPath: url("merged/summary.json").path))
        // A merged folder is a normal run folder: resuming it classifies nothing.
        XCTAssertEqual(try run("merged", scope: RunScope()).n, 5)
        // The output must be a new folder.
        XCTAssertThrowsError(try EvaluationRun.merge([url("s0"), url("s1")], into: url("merged"))) { e in
            XCTAssertTrue("\(e)".contains("merged/settings.json exists"), "\(e)")
        }
    }

    func testGapsAreReported() throws {
        // Shards of a 5-image run: without shard 1 (images 1 and 4), whose 4 is past every index merged.
        try run("s0", scope: RunScope(shard: (0, 3), datasetCount: 5))
        try run("s2", scope: RunScope(shard: (2, 3), datasetCount: 5))
        // Refused by default, naming the missing index, with nothing written.
        XCTAssertThrowsError(try EvaluationRun.merge([url("s0"), url("s2")], into: url("merged"))) { e in
            XCTAssertTrue("\(e)".contains("2 of the run's 5 images are in no shard (1, 4)"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("merged").path))
        let report = try EvaluationRun.merge([url("s0"), url("s2")], into: url("merged"), allowPartial: true)
        XCTAssertEqual(report.missing, [1, 4])  // s0 has 0, 3; s2 has 2
        XCTAssertEqual(report.summary.n, 3)
        XCTAssertEqual(report.runImages, 5)
    }

    func testDifferentSettingsAndOverlapsAreRefused() throws {
        try run("s0", scope: RunScope(shard: (0, 2)))
        try run("other", scope: RunScope(shard: (1, 2)), settings: settings(seed: 6))
        XCTAssertThrowsError(try EvaluationRun.merge([url("s0"), url("other")], into: url("m1"))) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains(self.url("s0").path) && text.contains(self.url("other").path) && text.contains("seed: 5 -> 6"), text)
        }
        try run("again", scope: RunScope(limit: 1))
        XCTAssertThrowsError(try EvaluationRun.merge([url("s0"), url("again")], into: url("m2"))) { e in
            XCTAssertTrue("\(e)".contains("image 0 is in both"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("m1").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("m2").path))
        XCTAssertThrowsError(try EvaluationRun.merge([url("s0"), url("nothing")], into: url("m3"))) { e in
            XCTAssertTrue("\(e)".contains("nothing: no settings.json"), "\(e)")
        }
    }
}
