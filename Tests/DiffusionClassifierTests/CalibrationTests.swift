import DiffusionClassifier
import Foundation
import XCTest

/// SplitMix64, for synthetic data independent of the engine's generator.
private struct Mix {
    var state: UInt64
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}

final class CalibrationTests: XCTestCase {
    /// Errors uniform in [0, 1) per class, labels drawn from softmax(-5 e): the true posterior has
    /// tau = 5, and the maximum-likelihood fit must find it (standard error about 0.06 here).
    func testFitRecoversAKnownTemperature() throws {
        var g = Mix(state: 42)
        let examples: [Calibration.Example] = (0..<5000).map { _ in
            let e = (0..<10).map { _ in g.next() }
            let p = Posterior.probabilities(meanErrors: e, tau: 5)
            var u = g.next(), y = 0
            while y < 9, u >= p[y] { u -= p[y]; y += 1 }
            return Calibration.Example(meanErrors: e, label: y)
        }
        let tau = try Calibration.fitTau(examples)
        XCTAssertEqual(tau, 5, accuracy: 0.3)
        // The fit is a minimum: the NLL is higher on both sides.
        let best = try Calibration.nll(examples, tau: tau)
        XCTAssertLessThan(best, try Calibration.nll(examples, tau: tau * 1.01))
        XCTAssertLessThan(best, try Calibration.nll(examples, tau: tau / 1.01))
        let r = try Calibration.fit(examples)
        XCTAssertEqual(r.tau, tau)
        XCTAssertLessThan(r.nllAfter, r.nllBefore)
        XCTAssertLessThan(r.eceAfter, 0.03)
        XCTAssertGreaterThan(r.eceBefore, r.eceAfter)
        // A missing error for the label is an error naming the example.
        XCTAssertThrowsError(try Calibration.nll([Calibration.Example(meanErrors: [1, nil], label: 1)], tau: 1)) { e in
            XCTAssertTrue("\(e)".contains("example 0"), "\(e)")
        }
    }

    func testECEOfCalibratedPredictionsIsZero() {
        // Exactly calibrated: in each group of 20 with confidence c, 20 c are right.
        var probabilities: [[Double]] = [], labels: [Int] = []
        for (c, right) in [(0.25, 5), (0.5, 10), (0.75, 15), (0.9, 18), (1.0, 20)] {
            for i in 0..<20 {
                probabilities.append([c] + Array(repeating: (1 - c) / 9, count: 9))
                labels.append(i < right ? 0 : 1)
            }
        }
        XCTAssertEqual(Calibration.expectedCalibrationError(probabilities: probabilities, labels: labels), 0, accuracy: 1e-12)
        // Calibrated in distribution: correct with probability = confidence.
        var g = Mix(state: 7)
        var p2: [[Double]] = [], y2: [Int] = []
        for _ in 0..<20000 {
            let c = 0.5 + 0.5 * g.next()
            p2.append([c, 1 - c])
            y2.append(g.next() < c ? 0 : 1)
        }
        XCTAssertLessThan(Calibration.expectedCalibrationError(probabilities: p2, labels: y2), 0.02)
        // Overconfident: confidence 0.9, half right -> 0.4. Two bins: |0.5 - 0.9| * 1/2 + |1 - 0.6| * 1/2.
        XCTAssertEqual(Calibration.expectedCalibrationError(probabilities: [[0.9, 0.1], [0.9, 0.1]], labels: [0, 1]), 0.4, accuracy: 1e-12)
        XCTAssertEqual(Calibration.expectedCalibrationError(probabilities: [[0.9, 0.1], [0.4, 0.6]], labels: [1, 1]), 0.5 * 0.9 + 0.5 * 0.4,
                       accuracy: 1e-12)
    }

    func testCalibrationFileRoundTripsAndChecksSettings() throws {
        let dir = try temporaryDirectory("cal")
        defer { try? FileManager.default.removeItem(at: dir) }
        var r = CalibrationResult(tau: 123.5, n: 10, accuracy: 0.5, bins: 15, nllBefore: 2.3, nllAfter: 1.1, eceBefore: 0.4, eceAfter: 0.05)
        r.loss = "l2"
        r.weighting = "uniform"
        let url = dir.appendingPathComponent("cal.json")
        try r.encoded().write(to: url)
        XCTAssertEqual(try CalibrationResult.load(url), r)
        let s = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 3, schedule: schedule(), method: .staged(StagedElimination.defaultStages), loss: .l1)
        XCTAssertThrowsError(try r.check(against: s, file: url.path)) { e in XCTAssertTrue(names(e, .loss) && "\(e)".contains("loss l2"), "\(e)") }
        try Data("{}".utf8).write(to: url)
        XCTAssertThrowsError(try CalibrationResult.load(url)) { e in XCTAssertTrue("\(e)".contains("cal.json"), "\(e)") }
    }
}
