import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine
import XCTest

final class RunTests: XCTestCase {
    var tmp: URL!
    override func setUpWithError() throws { tmp = try temporaryDirectory("evalrun") }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    let model = tinyModel(classes: 3)
    let images = randomImages(7)
    let labels = [0, 2, 1, 1, 0, 2, 1]
    let names = ["a", "b", "c"]

    func settings(seed: UInt64 = 5) -> EvaluationSettings {
        EvaluationSettings(model: "tiny", dataset: "random", split: "test", classes: 3, schedule: schedule(), method: .staged(try! StagedElimination(parsing: "2:2,1:4").stages), seed: seed)
    }

    @discardableResult
    func run(_ dir: String, scope: RunScope, settings s: EvaluationSettings? = nil) throws -> EvaluationSummary {
        let s = s ?? settings()
        let r = try EvaluationRun(directory: tmp.appendingPathComponent(dir), settings: s)
        let c = try s.makeClassifier(model: model, schedule: schedule(), batchSize: 4)
        return try r.run(indices: scope.indices(datasetCount: images.count), labels: labels, classNames: names, scope: scope,
                         batchSize: 4, image: { self.images[$0] }, classify: { try c.classify($0, imageIndex: $1) })
    }

    func lines(_ dir: String) throws -> [ImageRecord] {
        let data = try Data(contentsOf: tmp.appendingPathComponent(dir).appendingPathComponent("results.jsonl"))
        return try data.split(separator: 0x0A).map { try ImageRecord.parse(Data($0)).withoutTiming }.sorted { $0.index < $1.index }
    }

    func testResumedRunEqualsFullRun() throws {
        let full = try run("full", scope: RunScope())
        XCTAssertEqual(full.n, 7)
        try run("resumed", scope: RunScope(limit: 3))
        XCTAssertEqual(try lines("resumed").map(\.index), [0, 1, 2])
        // A run killed mid-line leaves an unterminated line: it is discarded.
        let results = tmp.appendingPathComponent("resumed/results.jsonl")
        let handle = try FileHandle(forWritingTo: results)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"index\":3,\"lab".utf8))
        try handle.close()
        let resumed = try run("resumed", scope: RunScope())
        XCTAssertEqual(try lines("resumed"), try lines("full"))
        XCTAssertEqual(resumed.accuracy, full.accuracy)
        XCTAssertEqual(resumed.meanCalls, full.meanCalls)
        XCTAssertEqual(full.meanCalls, 3 * 2 + 2 * 2)
        // A rerun of a finished run classifies nothing and gives the same summary.
        XCTAssertEqual(try run("full", scope: RunScope()).n, 7)
        XCTAssertEqual(try lines("full").count, 7)
    }

    /// settings.json records the folder's kind; the summary embeds the settings without it; the
    /// kind of a folder written before the key existed is read from its keys.
    func testFolderKindIsRecorded() throws {
        try run("k", scope: RunScope(limit: 1))
        let folder = tmp.appendingPathComponent("k")
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("settings.json"))) as! [String: Any]
        XCTAssertEqual(settings["kind"] as? String, "eval")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("summary.json"))) as! [String: Any]
        XCTAssertNil((summary["settings"] as! [String: Any])["kind"])
        XCTAssertEqual(RunKind.of(folder), .eval)
        var old = settings
        old["kind"] = nil
        XCTAssertEqual(RunKind.of(settings: old), .eval)
        old["replay_of"] = "/x"
        XCTAssertEqual(RunKind.of(settings: old), .replay)
        XCTAssertEqual(RunKind.of(settings: ["attacks": ["pgd"], "eps_text": "0.1"]), .robust)
        XCTAssertNil(RunKind.of(settings: ["foo": 1]))
        XCTAssertThrowsError(try RobustnessFolder(folder).readSettings()) { XCTAssertTrue("\($0)".contains("kind eval"), "\($0)") }
    }

    func testShardsMergedEqualFullRun() throws {
        try run("full", scope: RunScope())
        try run("s0", scope: RunScope(shard: (0, 3)))
        try run("s1", scope: RunScope(shard: (1, 3)))
        try run("s2", scope: RunScope(shard: (2, 3)))
        XCTAssertEqual(try lines("s1").map(\.index), [1, 4])
        let merged = try (lines("s0") + lines("s1") + lines("s2")).sorted { $0.index < $1.index }
        XCTAssertEqual(merged, try lines("full"))
    }

    func testDifferentSettingsAreRefused() throws {
        try run("a", scope: RunScope(limit: 2))
        XCTAssertThrowsError(try run("a", scope: RunScope(limit: 2), settings: settings(seed: 6))) { e in
            XCTAssertTrue("\(e)".contains("settings.json") && "\(e)".contains("seed: 5 -> 6"), "\(e)")
        }
        // A corrupt complete line is an error naming the file and line.
        let results = tmp.appendingPathComponent("a/results.jsonl")
        var data = try Data(contentsOf: results)
        data.append(Data("not json\n".utf8))
        try data.write(to: results)
        XCTAssertThrowsError(try run("a", scope: RunScope(limit: 3))) { e in
            XCTAssertTrue("\(e)".contains("results.jsonl: line 3"), "\(e)")
        }
    }

    func testSummaryStatistics() throws {
        func rec(_ i: Int, _ label: Int, _ pred: Int, calls: Int) -> ImageRecord {
            var r = ImageRecord(index: i, label: label, classification: Classification(
                prediction: pred, survivors: [pred], meanErrors: [1, 2, 3], scoreCounts: [1, 1, 1],
                probabilities: [0.5, 0.25, 0.25], calls: calls), seconds: 0.5)
            r.seconds = 0.5
            return r
        }
        let records = [rec(0, 0, 0, calls: 10), rec(1, 0, 1, calls: 20), rec(2, 1, 1, calls: 30), rec(3, 0, 0, calls: 40)]
        let s = EvaluationSummary(records: records, classNames: names, settings: settings(), batchSize: 8, threads: 2,
                                  scope: RunScope(limit: 4, shard: (1, 2)))
        XCTAssertEqual(s.accuracy, 0.75)
        XCTAssertEqual(s.accuracyStderr, (0.75 * 0.25 / 4).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(s.perClassAccuracy, [2.0 / 3, 1, nil])
        XCTAssertEqual(s.meanPerClassAccuracy, (2.0 / 3 + 1) / 2, accuracy: 1e-15)
        XCTAssertEqual(s.meanCalls, 25)
        XCTAssertEqual(s.imagesPerSecond, 2)
        XCTAssertEqual(s.shard, "1/2")
        XCTAssertEqual(RunScope(limit: 6, shard: (1, 4)).indices(datasetCount: 100), [1, 5])
        XCTAssertThrowsError(try RunScope.parseShard("2/2"))
    }
}

extension RunTests {
    /// The progress line: counts, accuracy, calls, elapsed and ETA; a bar for terminals; log lines
    /// every twentieth of the images, the last one, and at least one a minute.
    func testProgressText() throws {
        let c = Classification(prediction: 0, survivors: [0], meanErrors: [0.1, 0.2], scoreCounts: [3, 3], probabilities: [0.6, 0.4], calls: 6)
        let record = ImageRecord(index: 0, label: 0, classification: c, seconds: 1)
        let p = EvaluationProgress(done: 25, total: 100, correct: 20, meanCalls: 300, imagesPerSecond: 0.5, record: record)
        XCTAssertEqual(p.secondsLeft, 150)
        XCTAssertEqual(p.text(elapsed: 83), "25/100  25%  acc 80.00%  300 calls/image  elapsed 1:23  ETA 2:30  0.500 images/s")
        XCTAssertTrue(p.text(elapsed: 83, barWidth: 8).hasPrefix("[##......] 25/100"))
        XCTAssertEqual(EvaluationProgress.clock(3725), "1:02:05")
        XCTAssertTrue(p.isLogLine(secondsSinceLastLine: 1), "25 is a multiple of 100 / 20")
        let q = EvaluationProgress(done: 26, total: 100, correct: 20, meanCalls: 300, imagesPerSecond: 0, record: record)
        XCTAssertFalse(q.isLogLine(secondsSinceLastLine: 1))
        XCTAssertTrue(q.isLogLine(secondsSinceLastLine: 61))
        XCTAssertTrue(q.text(elapsed: 0).contains("ETA ?"))
    }
}
