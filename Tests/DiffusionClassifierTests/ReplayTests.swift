import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine
import XCTest

/// `RecordedScorer` / `Replay`: a strategy replayed over a recorded grid run equals the online run
/// with `--noise-by timestep`, and paired mean errors compare pruned classes on shared probes.
final class ReplayTests: XCTestCase {
    let model = tinyModel(classes: 3)
    let images = randomImages(4)

    /// Batch size 1: every U-Net call then holds one (class, probe) item, so an error is computed
    /// the same way whichever strategy asks for it (the engine's kernels may round differently for
    /// other batch compositions, ~1e-7 relative).
    func classifier(_ strategy: ClassificationStrategy, seed: UInt64 = 3, batchSize: Int = 1) throws -> Classifier {
        var o = ClassifierOptions()
        o.seed = seed
        o.batchSize = batchSize
        o.noiseNumbering = .timestep
        o.tau = 40
        return try Classifier(model: model, schedule: schedule(), conditions: [0, 1, 2], strategy: strategy, options: o)
    }

    /// The grid-8 run's records (per-probe errors saved), one per image.
    func recorded(seed: UInt64 = 3) throws -> [ImageRecord] {
        let c = try classifier(FixedTimesteps(sampler: .grid(8)), seed: seed)
        return try images.indices.map { i in
            ImageRecord(index: i, label: 0, classification: try c.classify(images[i], imageIndex: i), seconds: 0, saveErrors: true)
        }
    }

    func testNoiseByTimestepGivesEveryStrategyTheSameErrorAtEachTimestep() throws {
        let grid = try recorded()
        let staged = try classifier(StagedElimination(parsing: "2:4,1:8"))
        for (i, image) in images.enumerated() {
            let c = try staged.classify(image, imageIndex: i)
            let column = Dictionary(uniqueKeysWithValues: grid[i].probeTimesteps!.enumerated().map { ($1, $0) })
            for k in 0..<3 {
                for (j, t) in c.probeTimesteps.enumerated() {
                    guard let e = c.probeErrors[k][j] else { continue }
                    XCTAssertEqual(e, grid[i].probeErrors![k][column[t]!]!, "image \(i) class \(k) t \(t)")
                }
            }
        }
    }

    func testReplayEqualsOnlineRun() throws {
        let grid = try recorded()
        let strategies: [ClassificationStrategy] = [
            FixedTimesteps(sampler: .grid(8)),
            try StagedElimination(parsing: "2:2,1:8"),
            SequentialElimination(rule: PairedTTestRule(pValue: 0.3), sampler: .grid(8), minScores: 2),
            SequentialElimination(rule: LeaderGapRule(threshold: 1), sampler: .grid(8), minScores: 2, maxProbes: 5),
        ]
        try assertReplaysEqualOnlineRuns(strategies, records: grid) { online, _ in XCTAssertEqual(online.pairedErrors.count, 3) }
    }

    /// Each strategy online (batch size 1) and replayed over `records` give the same prediction,
    /// calls, score counts, probe timesteps, probabilities and mean errors; `extra` checks more.
    func assertReplaysEqualOnlineRuns(_ strategies: [ClassificationStrategy], records: [ImageRecord],
                                      extra: (Classification, Classification) -> Void = { _, _ in }) throws {
        for strategy in strategies {
            let online = try classifier(strategy)
            for (i, image) in images.enumerated() {
                let a = try online.classify(image, imageIndex: i)
                let b = try Replay.classify(records[i], strategy: strategy, range: 0..<1000, timesteps: 1000, seed: 3, tau: 40)
                let context = "\(type(of: strategy)) image \(i)"
                XCTAssertEqual(a.prediction, b.prediction, context)
                XCTAssertEqual(a.calls, b.calls, context)
                XCTAssertEqual(a.scoreCounts, b.scoreCounts, context)
                XCTAssertEqual(a.probeTimesteps, b.probeTimesteps, context)
                XCTAssertEqual(a.probabilities, b.probabilities, context)
                XCTAssertEqual(a.meanErrors, b.meanErrors, context)
                extra(a, b)
            }
        }
    }

    func testReplayAgreesWithOnlineRunsOfOtherBatchSizesToRounding() throws {
        let grid = try recorded()
        let strategy = try StagedElimination(parsing: "2:2,1:8")
        let online = try classifier(strategy, batchSize: 5)
        for (i, image) in images.enumerated() {
            let a = try online.classify(image, imageIndex: i)
            let b = try Replay.classify(grid[i], strategy: strategy, range: 0..<1000, timesteps: 1000, seed: 3, tau: 40)
            XCTAssertEqual(a.prediction, b.prediction)
            XCTAssertEqual(a.calls, b.calls)
            for (x, y) in zip(a.probabilities, b.probabilities) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
    }

    /// `eval --reuse`: a run that looks up a partial recording's errors (a staged run's: every
    /// class on the first stage, the survivors on the rest) and computes the others equals the
    /// run that computes everything, and runs the U-Net only for what was not recorded.
    func testReusedErrorsGiveTheOnlineResultsWithFewerModelCalls() throws {
        let staged = try classifier(StagedElimination(parsing: "2:2,1:8"))
        let partial = try images.indices.map { i in
            ImageRecord(index: i, label: 0, classification: try staged.classify(images[i], imageIndex: i), seconds: 0, saveErrors: true)
        }
        let strategies: [ClassificationStrategy] = [
            FixedTimesteps(sampler: .grid(8)),
            SequentialElimination(rule: LeaderGapRule(threshold: 1), sampler: .grid(8), minScores: 2),
        ]
        for strategy in strategies {
            let online = try classifier(strategy), reusing = try classifier(strategy)
            reusing.reusedErrors = Dictionary(uniqueKeysWithValues: try partial.map {
                ($0.index, try RecordedErrors(record: $0, weights: reusing.weights))
            })
            var reusedTotal = 0
            for (i, image) in images.enumerated() {
                let a = try online.classify(image, imageIndex: i), b = try reusing.classify(image, imageIndex: i)
                XCTAssertNil(a.modelCalls)
                XCTAssertEqual(a.prediction, b.prediction)
                XCTAssertEqual(a.calls, b.calls)
                XCTAssertEqual(a.probeTimesteps, b.probeTimesteps)
                XCTAssertEqual(a.meanErrors, b.meanErrors, "\(type(of: strategy)) image \(i)")
                XCTAssertEqual(a.probabilities, b.probabilities)
                // Reused: exactly the (class, t) pairs both the recording and this strategy scored.
                let column = Dictionary(uniqueKeysWithValues: partial[i].probeTimesteps!.enumerated().map { ($1, $0) })
                var shared = 0
                for k in 0..<3 {
                    for (j, t) in b.probeTimesteps.enumerated() where b.probeErrors[k][j] != nil {
                        if let col = column[t], partial[i].probeErrors![k][col] != nil { shared += 1 }
                    }
                }
                XCTAssertEqual(b.modelCalls, b.calls - shared)
                reusedTotal += shared
            }
            XCTAssertGreaterThan(reusedTotal, 0)
        }
        // A record without per-probe errors cannot be reused.
        var bare = partial[0]
        bare.probeErrors = nil
        XCTAssertThrowsError(try RecordedErrors(record: bare, weights: [Double](repeating: 1, count: 1000))) { error in
            XCTAssertTrue(names(error, .saveErrors), "\(error)")
        }
    }

    /// A staged recording (every class on stage one, the survivors on the rest) holds what rules
    /// on the stage-one sub-grid (`.subgrid(n, of: max n)`, `--timesteps grid:B`) need: their
    /// replays equal the online runs, and a sampler off that sub-grid is refused.
    func testRulesOnTheStageOneSubgridReplayOverAStagedRecording() throws {
        let staged = try classifier(StagedElimination(parsing: "2:4,1:16"))
        let records = try images.indices.map { i in
            ImageRecord(index: i, label: 0, classification: try staged.classify(images[i], imageIndex: i), seconds: 0, saveErrors: true)
        }
        let stageOne = TimestepGrid.stage(TimestepGrid.grid(T: 1000, maxN: 16), n: 4)
        var g = RandomGenerator(seed: 0)
        XCTAssertEqual(TimestepSampler.subgrid(4, of: 16).timesteps(range: 0..<1000, generator: &g), stageOne)
        let strategies: [ClassificationStrategy] = [
            FixedTimesteps(sampler: .subgrid(4, of: 16)),
            SequentialElimination(rule: PairedTTestRule(pValue: 0.3), sampler: .subgrid(4, of: 16), minScores: 2),
            SequentialElimination(rule: LeaderGapRule(threshold: 1), sampler: .subgrid(4, of: 16), minScores: 2),
        ]
        try assertReplaysEqualOnlineRuns(strategies, records: records) { online, _ in
            XCTAssertTrue(Set(online.probeTimesteps).isSubset(of: stageOne))
        }
        // The official grid of 4 (125, 375, ...) is not stage one of the 16-grid: refused.
        XCTAssertThrowsError(try Replay.classify(records[0], strategy: FixedTimesteps(sampler: .grid(4)),
                                                 range: 0..<1000, timesteps: 1000, seed: 3, tau: 40))
    }

    func testReplayRefusesTimestepsThatWereNotRecorded() throws {
        let grid = try recorded()
        XCTAssertThrowsError(try Replay.classify(grid[0], strategy: FixedTimesteps(sampler: .explicit([62, 500])),
                                                 range: 0..<1000, timesteps: 1000, seed: 3, tau: 1)) { error in
            XCTAssertTrue("\(error)".contains("timestep 500"), "\(error)")
        }
        var bare = grid[0]
        bare.probeErrors = nil
        XCTAssertThrowsError(try RecordedScorer(record: bare, timesteps: 1000)) { error in
            XCTAssertTrue(names(error, .saveErrors), "\(error)")
        }
    }

    func testPairedMeanErrorsComparePrunedClassesOnSharedProbes() throws {
        // Class 0 seen on probes 0-3, class 1 pruned after probes 0-1. Probes 2-3 are "hard"
        // (large errors for everyone), so class 1's plain mean looks better than class 0's.
        var r = try recorded()[0]
        r.probeTimesteps = [10, 20, 30, 40]
        r.probeErrors = [[1.0, 1.0, 5.0, 5.0], [1.5, 1.5, nil, nil], [2.0, 2.0, nil, nil]]
        let scorer = try RecordedScorer(record: r, timesteps: 1000)
        let ids = scorer.addProbes(timesteps: [10, 20])
        try scorer.score(candidates: [0, 1, 2], probes: ids)
        try scorer.score(candidates: [0], probes: scorer.addProbes(timesteps: [30, 40]))
        XCTAssertEqual(scorer.meanError(0), 3.0)
        XCTAssertEqual(scorer.meanError(1), 1.5)
        let paired = scorer.pairedMeanErrors(reference: 0)
        XCTAssertEqual(paired[0], 3.0)
        XCTAssertEqual(paired[1]!, 3.5, accuracy: 1e-12)
        XCTAssertEqual(paired[2]!, 4.0, accuracy: 1e-12)
        XCTAssertEqual(scorer.calls, 8)
    }
}
