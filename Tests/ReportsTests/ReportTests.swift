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

    /// A report comparing every row of the official strategy table (15 runs) must tell them apart.
    func testCompareGivesEachOfFifteenRunsItsOwnColour() throws {
        let base = try makeRun("report-colours-0", rows: rows)
        let others = try (1..<15).map { k in try makeRun("report-colours-\(k)", rows: rows.map { ($0.0, $0.1, 100 + 10 * k) }) }
        let html = try Report.load(base, compare: others).html()
        let callsChart = try XCTUnwrap(html.components(separatedBy: "<svg ").last)
        let colours = Set(Palette.series.prefix(15).filter { callsChart.contains("\"\($0)\"") })
        XCTAssertEqual(colours.count, 15, "every run's series has a colour no other run has")
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

    /// A robustness run folder with hand-made lines: `rows` (label, clean prediction, broken by).
    func makeRobustRun(_ tag: String, eps: String, lm: String? = nil, rows: [(Int, Int, String?)], pairs: Bool = false) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("adv"), withIntermediateDirectories: true)
        var lines = ""
        for (i, r) in rows.enumerated() {
            let correct = r.0 == r.1
            let verdict = !correct ? "misclassified" : (r.2 == nil ? "robust" : "broken")
            var attacks: [String] = []
            if correct {
                attacks.append("{\"backward_calls\":11,\"forward_calls\":11,\"name\":\"APGD-CE\",\"queries\":11,\"success\":\(r.2 == "apgd-ce")}")
                if r.2 != "apgd-ce" { attacks.append("{\"backward_calls\":0,\"forward_calls\":5,\"name\":\"Square\",\"queries\":5,\"success\":\(r.2 == "square")}") }
            }
            let by = r.2.map { ",\"broken_by\":\"\($0)\"" } ?? ""
            lines += "{\"attacks\":[\(attacks.joined(separator: ","))]\(by),\"clean_correct\":\(correct),\"clean_prediction\":\(r.1),"
                + "\"index\":\(i),\"label\":\(r.0),\"seconds\":\(correct ? 2.0 : 0.5),\"unet_passes\":\(correct ? 1000 : 50),\"verdict\":\"\(verdict)\"}\n"
            if pairs, r.2 != nil {
                try Data([0x89, 0x50, 0x4E, 0x47, UInt8(i)]).write(to: dir.appendingPathComponent("adv/\(i).png"))
                try Data([0x89, 0x50, 0x4E, 0x47, 0xC0 + UInt8(i)]).write(to: dir.appendingPathComponent("adv/\(i)-clean.png"))
            }
        }
        try Data(lines.utf8).write(to: dir.appendingPathComponent("results.jsonl"))
        var settings: [String: Any] = ["attacks": ["apgd-ce", "square"], "dataset": "fashion-mnist", "eot_draws": 1, "eps_text": eps,
                                       "epsilon": Double(eps)!, "iterations": 10, "model": "m", "norm": "linf", "seed": 0, "split": "test",
                                       "square_queries": 50, "timesteps": 5]
        settings["lm"] = lm
        try JSONSerialization.data(withJSONObject: settings).write(to: dir.appendingPathComponent("settings.json"))
        try JSONSerialization.data(withJSONObject: ["class_names": ["T-shirt/top", "<b>", "Bag & co"]]).write(to: dir.appendingPathComponent("summary.json"))
        return dir
    }

    func testRobustStatisticsFromHandMadeLines() throws {
        // 5 images: 1 misclassified, 2 robust, 1 broken by APGD-CE, 1 by Square.
        let dir = try makeRobustRun("robust-stats", eps: "0.1", rows: [(0, 0, nil), (1, 2, nil), (1, 1, "apgd-ce"), (2, 2, "square"), (2, 2, nil)])
        XCTAssertTrue(RobustRunData.isRobustFolder(dir))
        let r = try RobustRunData.load(dir)
        XCTAssertEqual(r.n, 5)
        XCTAssertEqual(r.cleanAccuracy, 0.8)
        XCTAssertEqual(r.robustAccuracy, 0.4)
        XCTAssertEqual(r.cleanStderr, (0.8 * 0.2 / 5).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(r.robustStderr, (0.4 * 0.6 / 5).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(r.breaks.map(\.name), ["apgd-ce", "square"])
        XCTAssertEqual(r.breaks.map(\.count), [1, 1])
        XCTAssertEqual(r.meanPassesPerAttacked, 1000)
        XCTAssertEqual(r.meanSecondsPerAttacked, 2)
        XCTAssertEqual(r.defence, "DC, T 5")
        XCTAssertEqual(r.attackDescription, "APGD-CE 10 it → Square 50 q")
        XCTAssertEqual(RobustRunData.shortLM("variant=paper,steps=5,eta=0.1,norm=linf,grad=exact,step=0.02,sigma=0.4:0.6"),
                       "LM paper 5 steps, eta 0.1")
        XCTAssertEqual(RobustRunData.shortLM("variant=code,steps=3,eta=8/255,norm=l2,grad=bpda"), "LM code 3 steps, eta 8/255, l2, bpda")
    }

    func testRobustReportGroupsDefencesByEpsilonAndEmbedsPairs() throws {
        let rows: [(Int, Int, String?)] = [(0, 0, nil), (1, 1, "apgd-ce"), (2, 2, "square"), (2, 2, nil)]
        let dc1 = try makeRobustRun("dc-0.1", eps: "0.1", rows: rows, pairs: true)
        let dc05 = try makeRobustRun("dc-0.05", eps: "0.05", rows: [(0, 0, nil), (1, 1, nil), (2, 2, "apgd-ce"), (2, 2, nil)])
        let rdc = try makeRobustRun("rdc-0.1", eps: "0.1", lm: "variant=paper,steps=5,eta=0.1,norm=linf,grad=exact", rows: rows)
        let report = try RobustReport.load(dc1, compare: [dc05, rdc])
        let families = report.families
        XCTAssertEqual(families.count, 2)
        XCTAssertEqual(families[0].runs.map(\.epsText), ["0.05", "0.1"], "one defence, sorted by eps")
        XCTAssertEqual(families[1].label, "RDC (LM paper 5 steps, eta 0.1), T 5; APGD-CE 10 it → Square 50 q")
        let series = report.epsilonSeries()
        XCTAssertEqual(series[0].points.map(\.x), [0, 0.05, 0.1])
        XCTAssertEqual(series[0].points.map(\.y), [1, 0.75, 0.5], "clean, then robust at each eps")
        XCTAssertEqual(series[1].points.map(\.x), [0, 0.1])
        let html = report.html()
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertEqual(html.components(separatedBy: "<svg ").count - 1, 3, "eps chart, outcomes, one pair grid")
        XCTAssertTrue(html.contains("Robust accuracy against epsilon"))
        XCTAssertTrue(html.contains("100.00% ± 0.00</td><td>50.00% ± 25.00"))
        XCTAssertTrue(html.contains("apgd-ce 1, square 1"))
        XCTAssertEqual(html.components(separatedBy: "<image ").count - 1, 4, "two pairs")
        XCTAssertTrue(html.contains("href=\"data:image/png;base64,\(Data([0x89, 0x50, 0x4E, 0x47, 0xC1]).base64EncodedString())\""))
        XCTAssertTrue(html.contains("#1 &lt;b&gt;"))
        XCTAssertFalse(html.contains("<b>") || html.contains("Bag & co"))
        XCTAssertFalse(html.contains("src=") || html.replacingOccurrences(of: "href=\"data:", with: "").contains("href="), "no external assets")
        XCTAssertTrue(html.contains("broken by apgd-ce"))
        // A mixed compare is refused, naming the folder.
        let eval = try makeRun("report-eval", rows: self.rows)
        XCTAssertThrowsError(try RobustReport.load(dc1, compare: [eval])) { XCTAssertTrue("\($0)".contains(eval.path)) }
    }
}

extension ReportTests {
    /// Reliability bars carry their image counts; one run's calls chart has a tick at its value;
    /// the runs table is padded; runs over different images are flagged; charts shrink to the page.
    func testReportReadability() throws {
        let a = try makeRun("report-read-a", rows: rows)
        let one = try Report.load(a).html()
        XCTAssertTrue(one.contains(">6</text>"), "count of the one reliability bin")
        XCTAssertTrue(one.contains(">100</text>"), "tick at the run's 100 calls/image")
        XCTAssertTrue(one.contains("<table class=\"runs\"><tr><th>run</th>"))
        XCTAssertTrue(one.contains("svg { max-width: 100%; height: auto; }"))
        XCTAssertFalse(one.contains("cover different images"))
        let b = try makeRun("report-read-b", rows: Array(rows.prefix(4)))
        let two = try Report.load(a, compare: [b]).html()
        XCTAssertTrue(two.contains("The runs cover different images (\(a.lastPathComponent) 6, \(b.lastPathComponent) 4; 4 in all of them)"), two)
        XCTAssertTrue(two.contains("Uncalibrated (tau 1)"))
    }
}
