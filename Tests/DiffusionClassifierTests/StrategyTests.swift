import Diffusion
import DiffusionClassifier
import TensorEngine
import XCTest

final class StrategyTests: XCTestCase {
    func testStagedKeepsTheRightClassesAndCountsCalls() throws {
        let model = tinyModel(classes: 4)
        let x0 = randomImages(1)[0]
        let strategy = try StagedElimination(parsing: "2:4,1:8")
        var o = ClassifierOptions(); o.batchSize = 5
        let c = try Classifier(model: model, schedule: schedule(), conditions: [0, 1, 2, 3], strategy: strategy, options: o)
        let scorer = try c.makeScorer(x0, imageIndex: 0)
        var g = RandomGenerator(seed: 0)
        let survivors = try strategy.run(scorer, range: 0..<1000, generator: &g)
        XCTAssertEqual(survivors.count, 1)
        // grid(8) = 62, 187, ..., 937; stage 1 = grid[1::2]; stage 2 adds the other four.
        XCTAssertEqual(scorer.probes.map(\.timestep), [187, 437, 687, 937, 62, 312, 562, 812])
        XCTAssertEqual(scorer.probes.map(\.noiseIndex), Array(0..<8))
        XCTAssertEqual(scorer.calls, 4 * 4 + 2 * 4)
        let counts = scorer.probeIDs.map(\.count)
        XCTAssertEqual(counts.sorted(), [4, 4, 8, 8])
        // The two kept had the lowest stage-1 means; the survivor has the lowest mean over all 8.
        let stage1 = (0..<4).map { scorer.errors[$0].prefix(4).reduce(0, +) / 4 }
        let kept = (0..<4).filter { counts[$0] == 8 }
        XCTAssertLessThanOrEqual(kept.map { stage1[$0] }.max()!, (0..<4).filter { counts[$0] == 4 }.map { stage1[$0] }.min()!)
        XCTAssertEqual(survivors[0], kept.min { scorer.meanError($0)! < scorer.meanError($1)! })
        let result = try c.classify(x0, imageIndex: 0)
        XCTAssertEqual(result.calls, 24)
        XCTAssertEqual(result.probabilities.count, 4)
        XCTAssertEqual(result.probabilities.reduce(0, +), 1, accuracy: 1e-12)
    }

    func testOfficialCIFARScheduleCallCount() throws {
        // 10 classes, "5:50,1:500": 10 * 50 + 5 * 450 = 2750 calls (the paper's CIFAR-10 cost).
        let spy = SpyPredictor()
        let c = try Classifier(model: spy, schedule: schedule(), conditions: Array(0..<10),
                               strategy: try StagedElimination(parsing: "5:50,1:500"))
        let r = try c.classify(randomImages(1)[0], imageIndex: 0)
        XCTAssertEqual(r.calls, 2750)
        XCTAssertEqual(spy.calls.count, 2750)
        XCTAssertEqual(r.scoreCounts.filter { $0 == 500 }.count, 5)
        XCTAssertEqual(r.survivors.count, 1)
    }

    func testPairedTTestEliminationStopsAndCountsCalls() throws {
        // Class c's prediction is eps + c * 0.3 + a small x_t-dependent wobble: class 0 wins,
        // far classes go at the first test, and calls add up over the rounds.
        let s = schedule()
        let x0 = randomImages(1)[0]
        let spy = SpyPredictor()
        spy.respond = { xt, ts, cond in
            let n = xt.shape[0], t = ts.map { Int($0) }
            let a = Tensor(shape: [n, 1, 1, 1], t.map { s.coefficients($0).signal })
            let b = Tensor(shape: [n, 1, 1, 1], t.map { s.coefficients($0).noise })
            let eps = (xt - x0.expanded(to: xt.shape) * a) / b
            let offset: Tensor = cond!.reshaped([n, 1, 1, 1]) * Float(0.3)
            let wobble: Tensor = (xt * Float(7)).tanh() * Float(0.2)
            return eps + offset + wobble
        }
        let strategy = SequentialElimination(rule: PairedTTestRule(pValue: 2e-3), sampler: .uniform(100), minScores: 20, testEvery: 5)
        let c = try Classifier(model: spy, schedule: s, conditions: [0, 1, 2, 3], strategy: strategy)
        let r = try c.classify(x0, imageIndex: 1)
        XCTAssertEqual(r.prediction, 0)
        XCTAssertEqual(r.survivors, [0])
        XCTAssertEqual(r.calls, r.scoreCounts.reduce(0, +))
        XCTAssertEqual(r.calls, spy.calls.count)
        XCTAssertTrue(r.scoreCounts.allSatisfy { $0 >= 20 && ($0 - 20) % 5 == 0 && $0 <= 100 }, "\(r.scoreCounts)")
        XCTAssertLessThan(r.calls, 4 * 100)

        // Identical classes are never separated: the run stops at max_scores.
        spy.respond = nil
        let tie = try Classifier(model: spy, schedule: s, conditions: [0, 1], strategy: strategy)
        let rt = try tie.classify(x0, imageIndex: 1)
        XCTAssertEqual(rt.scoreCounts, [100, 100])
        XCTAssertEqual(rt.calls, 200)
    }

    func testSameSeedSameResultsAcrossThreadsAndBatchSizes() throws {
        let model = tinyModel(classes: 4)
        let images = randomImages(2)
        let saved = Engine.threads
        defer { Engine.threads = saved }
        func run(threads: Int, batch: Int) throws -> [[Double?]] {
            Engine.threads = threads
            var o = ClassifierOptions(); o.batchSize = batch; o.seed = 11
            let strategies: [ClassificationStrategy] = [
                try StagedElimination(parsing: "2:3,1:6"),
                SequentialElimination(rule: PairedTTestRule(pValue: 0.2), sampler: .stratified(12), minScores: 4, testEvery: 2),
            ]
            return try strategies.flatMap { st in
                let c = try Classifier(model: model, schedule: schedule(), conditions: [0, 1, 2, 3], strategy: st, options: o)
                return try images.enumerated().map { i, x in
                    let r = try c.classify(x, imageIndex: i)
                    return r.meanErrors + r.probabilities.map { $0 } + [Double(r.calls), Double(r.prediction)]
                }
            }
        }
        let reference = try run(threads: 1, batch: 256)
        // Thread count: bitwise identical (the engine's kernels split work by size only).
        XCTAssertEqual(try run(threads: 2, batch: 256), reference, "threads 2")
        // Batch size: same predictions and calls; errors agree to float32 rounding. (Not bitwise:
        // the engine picks conv kernels by batch size (Winograd vs im2col) and BLAS blocks by the
        // product's size, so a U-Net output depends on its batch at the 1e-7 level.)
        for (threads, batch) in [(1, 3), (2, 7), (2, 1)] {
            let other = try run(threads: threads, batch: batch)
            for (a, b) in zip(other, reference) {
                XCTAssertEqual(a.suffix(2), b.suffix(2), "calls and prediction: threads \(threads), batch \(batch)")
                for (x, y) in zip(a, b) { XCTAssertEqual(x!, y!, accuracy: 1e-5 * abs(y!), "threads \(threads), batch \(batch)") }
            }
        }
    }

    /// The leader-gap rule's first round without `min_scores`: 5 shared probes. The CLI has
    /// always written `min_scores` 5 into settings.json for `--leader-gap` without `--min-scores`,
    /// so every recorded run used 5; settings without the key (written by the library) read the
    /// same, and the method runs with it. (An older library fallback used 2.)
    func testLeaderGapDefaultIsTheRecordedOne() throws {
        XCTAssertEqual(LeaderGapRule.defaultMinScores, 5)
        let defaults = LeaderGapSettings()
        XCTAssertEqual(defaults.minScores, 5)
        XCTAssertEqual(defaults.gap, 2)
        XCTAssertEqual(defaults.testEvery, 1)
        XCTAssertEqual(defaults.sampler, .grid(50))
        XCTAssertNil(defaults.maxProbes)
        let settings = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 4, schedule: schedule(),
                                          method: .leaderGap(defaults))
        var json = try JSONSerialization.jsonObject(with: try settings.encoded()) as! [String: Any]
        XCTAssertEqual(json["min_scores"] as? Int, 5)
        json["min_scores"] = nil
        json["gap"] = nil
        json["test_every"] = nil
        let read = try EvaluationSettings.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertEqual(read, settings)
        let strategy = try XCTUnwrap(read.method.strategy as? SequentialElimination<LeaderGapRule>)
        XCTAssertEqual(strategy.minScores, 5)
        XCTAssertEqual(strategy.rule.threshold, 2)
        XCTAssertEqual(strategy.testEvery, 1)
    }

    /// The paired t-test's defaults are Clark & Jaini's: p 2e-3 after 20 scores, up to 2000
    /// uniform timesteps, tested after every probe.
    func testTTestDefaultsAreThePapers() throws {
        let t = TTestSettings()
        XCTAssertEqual(t.pValue, 2e-3)
        XCTAssertEqual(t.minScores, 20)
        XCTAssertEqual(t.testEvery, 1)
        XCTAssertEqual(t.sampler, .uniform(2000))
        let strategy = try XCTUnwrap(ClassificationMethod.ttest(t).strategy as? SequentialElimination<PairedTTestRule>)
        XCTAssertEqual(strategy.rule.pValue, 2e-3)
        XCTAssertEqual(strategy.minScores, 20)
    }

    /// Typed settings write what they read: every method and option round-trips through
    /// settings.json (values equal, bytes equal).
    func testSettingsRoundTripThroughJSON() throws {
        var ttest = TTestSettings(sampler: .explicit([5, 500, 900]))
        ttest.maxProbes = 2
        var gap = LeaderGapSettings(sampler: .subgrid(16, of: 64))
        gap.gap = 1.5
        gap.minScores = 2
        gap.testEvery = 3
        let methods: [ClassificationMethod] = [.fixed(.grid(3)), .fixed(.stratified(4)), .fixed(.explicit([1, 2])),
                                               .staged(StagedElimination.defaultStages), .ttest(TTestSettings()), .ttest(ttest),
                                               .leaderGap(LeaderGapSettings()), .leaderGap(gap)]
        for method in methods {
            var s = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 4, schedule: schedule(), method: method,
                                       timestepRange: 100..<900, loss: .huber, weighting: .exponential(rate: 3), tau: 2.5, seed: 7)
            s.noiseNumbering = .timestep
            s.saveErrors = true
            s.weightStorage = .bfloat16
            s.prompts = ["a", "b", "c", "d"]
            s.imageSize = 16
            let data = try s.encoded()
            let read = try EvaluationSettings.decode(data)
            XCTAssertEqual(read, s, "\(method)")
            XCTAssertEqual(try read.encoded(), data, "\(method)")
            XCTAssertEqual(try read.differences(from: s), [], "\(method)")
        }
        XCTAssertEqual(TimestepWeighting.exponential(rate: 3).name, "exp:3")
        XCTAssertEqual(TimestepWeighting.exponential(rate: 7).name, "exp")
        XCTAssertEqual(TimestepWeighting.exponential(rate: 0.5).name, "exp:0.5")
    }
}
