import DiffusionClassifier
import Foundation
import Reports
import XCTest

final class ReportTests: XCTestCase {
    /// A run folder with hand-made records: 3 classes, 6 images.
    func makeRun(_ tag: String, names: [String] = ["T-shirt/top", "<b>", "Bag & co"],
                 rows: [(label: Int, prediction: Int, calls: Int)]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var lines = ""
        for (i, r) in rows.enumerated() {
            var p = [0.1, 0.1, 0.1]
            p[r.prediction] = 0.8
            let e: String = p.map { (x: Double) -> String in String(1 - x) }.joined(separator: ",")
            lines += "{\"calls\":\(r.calls),\"index\":\(i),\"label\":\(r.label),\"mean_errors\":[\(e)],\"prediction\":\(r.prediction),"
                + "\"probabilities\":[\(p.map { (x: Double) -> String in String(x) }.joined(separator: ","))],\"scores\":[1,1,1],\"seconds\":0.5}\n"
        }
        try Data(lines.utf8).write(to: dir.appendingPathComponent("results.jsonl"))
        let summary = try JSONSerialization.data(withJSONObject: ["class_names": names])
        try summary.write(to: dir.appendingPathComponent("summary.json"))
        let settings = try JSONSerialization.data(withJSONObject: ["method": "staged", "stages": "5:50,1:500", "classes": 3, "noise": NSNull()])
        try settings.write(to: dir.appendingPathComponent("settings.json"))
        return dir
    }

    let rows = [(0, 0, 100), (0, 1, 100), (0, 1, 100), (1, 1, 100), (2, 2, 100), (2, 0, 100)]

    func testStatisticsFromHandMadeRecords() throws {
        let run = try RunData.load(try makeRun("report-stats", rows: rows))
        XCTAssertEqual(run.n, 6)
        XCTAssertEqual(run.correct, 3)
        XCTAssertEqual(run.accuracy, 0.5)
        XCTAssertEqual(run.accuracyStderr, (0.25 / 6).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(run.meanCalls, 100)
        XCTAssertEqual(run.imagesPerSecond, 2, accuracy: 1e-12)
        XCTAssertEqual(run.confusion, [[1, 2, 0], [0, 1, 0], [1, 0, 1]])
        XCTAssertEqual(run.perClassAccuracy.map { $0! }, [1.0 / 3, 1, 0.5])
        XCTAssertEqual(run.methodDescription, "stages 5:50,1:500")
        // Every confidence is 0.8 (bin 12 of 15: (0.8, 0.8667]... 0.8 * 15 = 12 -> bin 11), accuracy 1/2.
        let bins = run.reliabilityBins()
        XCTAssertEqual(bins.filter { $0.count > 0 }.count, 1)
        XCTAssertEqual(bins[11].count, 6)
        XCTAssertEqual(bins[11].accuracy, 0.5)
        XCTAssertEqual(run.expectedCalibrationError, 0.3, accuracy: 1e-9)
    }

    func testHTMLHasChartsNumbersAndEscapedNames() throws {
        let dir = try makeRun("report-html", rows: rows)
        let report = try Report.load(dir)
        try report.write(to: dir.appendingPathComponent("report.html"))
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, 4, "confusion, bars, reliability, calls")
        for element in ["<rect ", "<text ", "<line ", "<circle "] { XCTAssertTrue(html.contains(element), element) }
        XCTAssertTrue(html.contains("50.00% ± 20.41"))
        XCTAssertTrue(html.contains("(n = 6)"))
        XCTAssertTrue(html.contains("ECE 0.3000"))
        // Confusion counts, with escaped class names in the cell titles.
        XCTAssertTrue(html.contains("<title>true T-shirt/top, predicted &lt;b&gt;: 2</title>"))
        XCTAssertTrue(html.contains("<title>true Bag &amp; co, predicted T-shirt/top: 1</title>"))
        XCTAssertTrue(html.contains(">&lt;b&gt;</text>"))
        XCTAssertFalse(html.contains("<b>"))
        XCTAssertFalse(html.contains("Bag & co"))
        XCTAssertFalse(html.contains("http-equiv") || html.contains("src=") || html.contains("href="), "no external assets")
        XCTAssertTrue(html.contains("<th>stages</th><td>5:50,1:500</td>"))
        XCTAssertFalse(html.contains("<th>noise</th>"), "nulls left out")
    }

    func testCompareAddsARunPerFolder() throws {
        let a = try makeRun("report-a", rows: rows)
        let b = try makeRun("report-b", rows: rows.map { ($0.0, $0.0, 1000) })
        let html = try Report.load(a, compare: [b]).html()
        XCTAssertTrue(html.contains(b.lastPathComponent))
        XCTAssertTrue(html.contains("1000 calls/image, 100.00% ± 0.00 (n = 6)"))
        XCTAssertTrue(html.contains("runs by cost"))
    }

    func testAnalysisSectionWhenAnalysisJSONExists() throws {
        let dir = try makeRun("report-analysis", rows: rows)
        let a = AnalysisResult(model: "m<1>", dataset: "ds", split: "test", n: 4, classes: 3, seed: 0, timesteps: 1000,
                               singleTimestep: [.init(t: 25, accuracy: 0.5, stderr: 0.25), .init(t: 525, accuracy: 0.25, stderr: 0.2)],
                               timestepCounts: [.init(count: 1, sharedAccuracy: 0.5, sharedStderr: 0.25, independentAccuracy: 0.25, independentStderr: 0.2)],
                               countTimesteps: [500], calls: 60)
        try a.write(to: dir.appendingPathComponent("analysis.json"))
        let html = try Report.load(dir).html()
        XCTAssertTrue(html.contains("Accuracy from a single timestep"))
        XCTAssertTrue(html.contains("shared noise"))
        XCTAssertTrue(html.contains("independent noise"))
        XCTAssertTrue(html.contains("model m&lt;1&gt;"))
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, 6)
    }

    func testErrorsNameTheFolder() {
        let missing = URL(fileURLWithPath: "/nonexistent/run-x")
        XCTAssertThrowsError(try Report.load(missing)) { XCTAssertTrue("\($0)".contains("/nonexistent/run-x")) }
    }

    func testEscapeAndTicks() {
        XCTAssertEqual(htmlEscape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;")
        XCTAssertEqual(AxisScale(lower: 0, upper: 1, from: 0, to: 100).ticks(count: 5), [0, 0.2, 0.4, 0.6, 0.8, 1.0].map { $0 })
        XCTAssertEqual(AxisScale(lower: 50, upper: 3000, from: 0, to: 100, log: true).ticks(), [50, 100, 200, 500, 1000, 2000])
        XCTAssertEqual(AxisScale(lower: 10, upper: 1000, from: 0, to: 100, log: true).map(100), 50, accuracy: 1e-9)
    }
}
