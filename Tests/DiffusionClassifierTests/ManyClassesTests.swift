import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine
import XCTest

/// Errors from a formula instead of a model, so the strategies can be run at 1,000 classes in
/// milliseconds: error(c, t) = a per-timestep level shared by every class (the paired design's
/// common part) + a per-class bias + per-(class, timestep) noise from a seeded generator.
final class SyntheticScorer: ProbeScorer {
    let error: (_ candidate: Int, _ timestep: Int) -> Double

    init(classes: Int, T: Int = 1000, error: @escaping (Int, Int) -> Double) {
        self.error = error
        super.init(candidateCount: classes, weights: [Double](repeating: 1, count: T))
    }

    override func score(candidates: [Int], probes ids: [Int]) throws {
        checkUnseen(candidates: candidates, probes: ids)
        for c in candidates { for id in ids { record(candidate: c, probe: id, error: error(c, probes[id].timestep)) } }
    }

    /// Class 0 best, class c's bias `step` x c above it (plus `gap` for every other class), noise
    /// uniform in +-`noise`; the same (c, t) always gives the same error.
    static func errors(seed: UInt64 = 11, step: Double = 2e-4, gap: Double = 0, noise: Double = 0.02) -> (Int, Int) -> Double {
        let g = RandomGenerator(seed: seed)
        return { c, t in
            let u = Double(g.derived(UInt64(c)).block(at: UInt64(t))[0]) / Double(UInt32.max)
            return 0.2 + 0.5 * Double(t) / 1000 + (c == 0 ? 0 : gap + step * Double(c)) + noise * (2 * u - 1)
        }
    }
}

final class ManyClassesTests: XCTestCase {
    static let imageNetStages = "500:50,50:100,10:500,1:1000"

    /// The public code's eval_prob_adaptive, ported independently of `StagedElimination` (as
    /// tools/reference_classifier.py has it): per stage, the centred strided sub-grid minus what
    /// was evaluated, every remaining class scored there, then a stable sort by the mean over all
    /// it saw and the first `keep`. Returns the remaining classes, calls and per-class timesteps.
    func publicCodeStaged(classes: Int, T: Int, nSamples: [Int], toKeep: [Int], error: (Int, Int) -> Double)
        -> (remaining: [Int], calls: Int, timesteps: [[Int]]) {
        let maxN = nSamples.max()!
        let grid = Array(stride(from: T / maxN / 2, to: T, by: T / maxN).prefix(maxN))
        var data = [[(t: Int, e: Double)]](repeating: [], count: classes)
        var remaining = Array(0..<classes), evaluated = Set<Int>(), calls = 0
        for (n, keep) in zip(nSamples, toKeep) {
            let step = grid.count / n
            let current = Array(stride(from: step / 2, to: grid.count, by: step).prefix(n)).map { grid[$0] }.filter { !evaluated.contains($0) }
            for c in remaining { for t in current { data[c].append((t, error(c, t))); calls += 1 } }
            evaluated.formUnion(current)
            let mean = { (c: Int) in data[c].map(\.e).reduce(0, +) / Double(data[c].count) }
            // Swift's sort is not stable; (mean, position) is Python's stable sort.
            remaining = remaining.enumerated().sorted { (mean($0.element), $0.offset) < (mean($1.element), $1.offset) }.prefix(keep).map(\.element)
        }
        return (remaining, calls, data.map { $0.map(\.t) })
    }

    /// The official ImageNet schedule at 1,000 classes: stage s scores the classes that remain
    /// on the stage's new timesteps, so 1000 x 50 + 500 x 100 + 50 x 400 + 10 x 450 = 124,500
    /// calls (the grids are not nested: stage 3's 500 odd timesteps hold stage 2's 100, stage 4
    /// adds the 450 even ones stage 1 did not have), not the 100,000 of the paper's table; the
    /// same classes kept at every stage as the public code's loop.
    func testOfficialImageNetScheduleAtThousandClasses() throws {
        let error = SyntheticScorer.errors()
        let scorer = SyntheticScorer(classes: 1000, error: error)
        let strategy = try StagedElimination(parsing: Self.imageNetStages)
        XCTAssertEqual(strategy.stages.map(\.keep), [500, 50, 10, 1])
        XCTAssertEqual(strategy.stages.map(\.samples), [50, 100, 500, 1000])
        let started = Date()
        let c = try Classifier.run(strategy, on: scorer, range: 0..<1000, seed: 0, imageIndex: 0, tau: 1)
        let seconds = Date().timeIntervalSince(started)

        XCTAssertEqual(c.calls, 1000 * 50 + 500 * 100 + 50 * 400 + 10 * 450)
        XCTAssertEqual(c.calls, 124_500)
        var histogram: [Int: Int] = [:]
        for n in c.scoreCounts { histogram[n, default: 0] += 1 }
        XCTAssertEqual(histogram, [50: 500, 150: 450, 550: 40, 1000: 10])
        // Every timestep of 0..<1000 probed once, in the stages' order, noise numbered by probe.
        let ts = scorer.probes.map(\.timestep)
        XCTAssertEqual(Array(ts.prefix(50)), Array(stride(from: 10, to: 1000, by: 20)))
        XCTAssertEqual(Array(ts[50..<150]), Array(stride(from: 5, to: 1000, by: 10)))
        XCTAssertEqual(Set(ts[150..<550]), Set(stride(from: 1, to: 1000, by: 2)).subtracting(stride(from: 5, to: 1000, by: 10)))
        XCTAssertEqual(ts.count, 1000)
        XCTAssertEqual(Set(ts), Set(0..<1000))
        XCTAssertEqual(scorer.probes.map(\.noiseIndex), Array(0..<1000))

        let reference = publicCodeStaged(classes: 1000, T: 1000, nSamples: [50, 100, 500, 1000], toKeep: [500, 50, 10, 1], error: error)
        XCTAssertEqual(reference.calls, 124_500)
        XCTAssertEqual(c.survivors, reference.remaining)
        XCTAssertEqual(c.prediction, reference.remaining[0])
        XCTAssertEqual(c.scoreCounts, reference.timesteps.map(\.count))
        for k in 0..<1000 { XCTAssertEqual(scorer.probeIDs[k].map { ts[$0] }, reference.timesteps[k], "class \(k)") }
        XCTAssertEqual(c.prediction, 0, "class 0 has the lowest bias")

        // Ranking: the 10 of the last stage, then the 40 dropped at stage 3, ... each group by mean.
        let ranking = c.ranking
        XCTAssertEqual(ranking.count, 1000)
        XCTAssertEqual(Set(ranking), Set(0..<1000))
        XCTAssertEqual(ranking[0], c.prediction)
        XCTAssertEqual(ranking.map { c.scoreCounts[$0] }, [Int](repeating: 1000, count: 10) + [Int](repeating: 550, count: 40)
                       + [Int](repeating: 150, count: 450) + [Int](repeating: 50, count: 500))
        for (a, b) in zip(ranking.dropFirst(), ranking.dropFirst(2)) where c.scoreCounts[a] == c.scoreCounts[b] {
            XCTAssertLessThanOrEqual(c.meanErrors[a]!, c.meanErrors[b]!)
        }
        // Per-class state is one (probe, error) entry per call, not classes x probes.
        XCTAssertEqual(scorer.errors.map(\.count).reduce(0, +), c.calls)
        XCTAssertLessThan(seconds, 20, "the schedule's bookkeeping at 1,000 classes")
    }

    /// The sequential rules at 1,000 classes with their defaults: calls are the sum of the
    /// probes each class saw, the winner is found, classes dropped later rank higher.
    func testSequentialRulesAtThousandClasses() throws {
        // Class 0 is 0.05 below the rest, which are spread over 0.2: most go after the first round.
        let error = SyntheticScorer.errors(step: 2e-4, gap: 0.05, noise: 0.02)
        let rules: [(String, ClassificationStrategy, Int)] = [
            ("leader-gap", ClassificationMethod.leaderGap(LeaderGapSettings()).strategy, LeaderGapRule.defaultMinScores),
            ("t-test", ClassificationMethod.ttest(TTestSettings()).strategy, PairedTTestRule.defaultMinScores),
        ]
        for (name, strategy, minScores) in rules {
            let scorer = SyntheticScorer(classes: 1000, error: error)
            let started = Date()
            let c = try Classifier.run(strategy, on: scorer, range: 0..<1000, seed: 3, imageIndex: 5, tau: 1)
            let seconds = Date().timeIntervalSince(started)
            XCTAssertEqual(c.prediction, 0, name)
            XCTAssertEqual(c.survivors, [0], name)
            XCTAssertEqual(c.calls, c.scoreCounts.reduce(0, +), name)
            XCTAssertEqual(scorer.errors.map(\.count).reduce(0, +), c.calls, name)
            XCTAssertTrue(c.scoreCounts.allSatisfy { $0 >= minScores }, name)
            XCTAssertGreaterThanOrEqual(c.calls, 1000 * minScores, name)
            XCTAssertLessThan(c.calls, 1000 * minScores * 3, "\(name): most classes go at the first test")
            let ranking = c.ranking
            XCTAssertEqual(ranking.first, 0, name)
            XCTAssertEqual(Set(ranking).count, 1000, name)
            XCTAssertEqual(ranking.map { c.scoreCounts[$0] }, ranking.map { c.scoreCounts[$0] }.sorted(by: >), name)
            XCTAssertLessThan(seconds, 20, "\(name) at 1,000 classes")
        }
    }

    /// Identical classes are never separated: the t-test spends its whole budget on every class;
    /// with several survivors the record keeps them, and its ranking (from the line alone) puts
    /// them above the classes dropped in the same round.
    func testRankingOfSeveralSurvivorsAndRecordedRanking() throws {
        // Survivors 0 and 2 (scored 4 times), 1 dropped in the last round with a lower mean than 2,
        // 3 dropped earlier.
        let c = Classification(prediction: 0, survivors: [0, 2], meanErrors: [0.1, 0.15, 0.2, 0.05], scoreCounts: [4, 4, 4, 2],
                               probabilities: [0.25, 0.25, 0.25, 0.25], calls: 14)
        XCTAssertEqual(c.ranking, [0, 2, 1, 3])
        let record = ImageRecord(index: 0, label: 1, classification: c, seconds: 0)
        XCTAssertEqual(record.survivors, [0, 2])
        let line = try record.line()
        let back = try ImageRecord.parse(line)
        XCTAssertEqual(back.ranking, [0, 2, 1, 3])
        XCTAssertFalse(back.isInTop(2))
        XCTAssertTrue(back.isInTop(3))
        XCTAssertTrue(String(decoding: line, as: UTF8.self).contains("\"survivors\":[0,2]"))

        // One survivor, or every class (fixed timesteps): nothing written, the same ranking.
        for survivors in [[0], [0, 1, 2, 3]] {
            let one = Classification(prediction: 0, survivors: survivors, meanErrors: [0.1, 0.3, 0.2, 0.4], scoreCounts: [4, 4, 4, 4],
                                     probabilities: [0.25, 0.25, 0.25, 0.25], calls: 16)
            let r = ImageRecord(index: 0, label: 2, classification: one, seconds: 0)
            XCTAssertNil(r.survivors)
            XCTAssertEqual(r.ranking, one.ranking)
            XCTAssertEqual(r.ranking, [0, 2, 1, 3])
        }
        // A class never scored ranks last; a damaged line with fewer counts than means does not crash.
        XCTAssertEqual(ClassRanking.rank(prediction: 1, survivors: [1], scoreCounts: [3, 3, 0], meanErrors: [0.2, 0.1, nil]), [1, 0, 2])
        XCTAssertEqual(ClassRanking.rank(prediction: 0, survivors: [0], scoreCounts: [3], meanErrors: [0.2, 0.1]), [0, 1])
    }

    /// Top-5 accuracy in the summary (ImageNet convention) and the most frequent confusions.
    func testTopFiveAccuracyAndTopConfusions() throws {
        func record(_ i: Int, label: Int, order: [Int]) -> ImageRecord {
            // mean error of class order[k] is k: the ranking is `order`.
            var means = [Double?](repeating: 100, count: 8)
            for (k, c) in order.enumerated() { means[c] = Double(k) }
            let c = Classification(prediction: order[0], survivors: Array(0..<8), meanErrors: means, scoreCounts: [Int](repeating: 2, count: 8),
                                   probabilities: [Double](repeating: 0.125, count: 8), calls: 16)
            return ImageRecord(index: i, label: label, classification: c, seconds: 1)
        }
        let records = [record(0, label: 0, order: [0, 1, 2, 3, 4, 5, 6, 7]),   // top-1
                       record(1, label: 4, order: [1, 2, 3, 0, 4, 5, 6, 7]),   // top-5, not top-1
                       record(2, label: 5, order: [1, 2, 3, 0, 4, 5, 6, 7]),   // neither
                       record(3, label: 4, order: [1, 0, 2, 3, 5, 6, 7, 4])]   // neither
        let settings = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 8, schedule: schedule(), method: .fixed(.grid(2)))
        let s = EvaluationSummary(records: records, classNames: (0..<8).map { "c\($0)" }, settings: settings, batchSize: 1, threads: 1,
                                  scope: RunScope())
        XCTAssertEqual(s.accuracy, 0.25)
        XCTAssertEqual(s.top5Correct, 2)
        XCTAssertEqual(s.top5Accuracy, 0.5)
        XCTAssertEqual(s.top5AccuracyStderr, (0.25 / 4).squareRoot(), accuracy: 1e-15)
        let url = try temporaryDirectory("top5").appendingPathComponent("summary.json")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try s.write(to: url)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        XCTAssertEqual(json["top5_accuracy"] as? Double, 0.5)
        XCTAssertEqual(json["top5_correct"] as? Int, 2)
        let top = EvaluationStatistics.topConfusions(records, limit: 2)
        XCTAssertEqual(top.map { [$0.label, $0.prediction, $0.count] }, [[4, 1, 2], [5, 1, 1]])
        XCTAssertEqual(EvaluationStatistics.topConfusions(records, limit: 10).count, 2)
    }
}
