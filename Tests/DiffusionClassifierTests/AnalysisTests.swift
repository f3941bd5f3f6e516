import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine
import XCTest

final class AnalysisTests: XCTestCase {
    /// Shared noise: every class sees the same x_t at a timestep. Independent noise: class c sees
    /// x0 noised with its own draw (`SeededNoise.independent`), so classes see different x_t.
    func testSharedAndIndependentNoiseDifferOnlyInNoise() throws {
        let s = schedule()
        let x0 = randomImages(1)[0]
        let timesteps = [100, 600]
        for independent in [false, true] {
            let spy = SpyPredictor()
            var o = ClassifierOptions()
            o.seed = 3
            o.batchSize = 5
            o.independentNoise = independent
            let c = try Classifier(model: spy, schedule: s, conditions: [0, 1, 2], strategy: FixedTimesteps(sampler: .explicit(timesteps)), options: o)
            let r = try c.classify(x0, imageIndex: 4)
            XCTAssertEqual(r.calls, 6)
            for (k, t) in timesteps.enumerated() {
                let seen = spy.calls.filter { $0.timestep == Float(t) }
                XCTAssertEqual(seen.map(\.condition), [0, 1, 2])
                if independent {
                    for (cls, call) in seen.enumerated() {
                        let eps = try SeededNoise.independent(seed: 3, imageIndex: 4, classIndex: cls, shape: x0.shape).noise(k)
                        XCTAssertEqual(call.sample, s.addNoise(x0, noise: eps, timesteps: [t]).scalars)
                    }
                    XCTAssertNotEqual(seen[0].sample, seen[1].sample)
                    XCTAssertNotEqual(seen[1].sample, seen[2].sample)
                } else {
                    let eps = try SeededNoise(seed: 3, imageIndex: 4, shape: x0.shape).noise(k)
                    for call in seen { XCTAssertEqual(call.sample, s.addNoise(x0, noise: eps, timesteps: [t]).scalars) }
                }
            }
        }
    }

    func testIndependentNoiseRejectsANoiseFile() throws {
        var o = ClassifierOptions()
        o.independentNoise = true
        let c = try Classifier(model: SpyPredictor(), schedule: schedule(), conditions: [0, 1], strategy: FixedTimesteps(sampler: .grid(2)),
                               options: o, noiseFile: FileNoise(eps: Tensor.zeros([2, 1, 8, 8]), path: "eps.safetensors"))
        XCTAssertThrowsError(try c.classify(randomImages(1)[0], imageIndex: 0)) { XCTAssertTrue(names($0, .noise), "\($0)") }
    }

    func testSpreadOrderIsAPermutationWithSpreadPrefixes() {
        for n in [1, 2, 5, 20, 50] {
            let o = TimestepAnalysis.spreadOrder(n)
            XCTAssertEqual(o.sorted(), Array(0..<n))
        }
        XCTAssertEqual(Array(TimestepAnalysis.spreadOrder(50).prefix(2)), [0, 25])
    }

    func testAnalysisOnATinyModelWritesTheExpectedJSON() throws {
        let model = tinyModel(classes: 3)
        let s = schedule()
        var analysis = try TimestepAnalysis(T: 1000, points: 4, counts: [3, 1, 2], seed: 5)
        analysis.batchSize = 7
        let images = randomImages(2)
        let r = try analysis.run(model: model, schedule: s, conditions: [0, 1, 2], images: images, labels: [0, 2], indices: [0, 1])
        XCTAssertEqual(r.singleTimestep.map(\.t), TimestepGrid.grid(T: 1000, maxN: 4))
        XCTAssertEqual(r.timestepCounts.map(\.count), [1, 2, 3])
        XCTAssertEqual(Set(r.countTimesteps), Set(TimestepGrid.grid(T: 1000, maxN: 3)))
        XCTAssertEqual(r.calls, 2 * 3 * (4 + 3 + 3))
        for p in r.singleTimestep { XCTAssertTrue([0, 0.5, 1].contains(p.accuracy)) }
        // The same inputs give the same numbers (seeded).
        let again = try analysis.run(model: model, schedule: s, conditions: [0, 1, 2], images: images, labels: [0, 2], indices: [0, 1])
        XCTAssertEqual(again.timestepCounts, r.timestepCounts)

        let result = AnalysisResult(model: "tiny", dataset: "random", split: "test", n: 2, classes: 3, seed: 5, timesteps: 1000,
                                    singleTimestep: r.singleTimestep, timestepCounts: r.timestepCounts, countTimesteps: r.countTimesteps,
                                    calls: r.calls)
        let dir = try temporaryDirectory("analysis")
        let url = dir.appendingPathComponent("analysis.json")
        try result.write(to: url)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        for key in ["single_timestep", "timestep_counts", "count_timesteps", "calls", "n", "classes", "seed", "model", "dataset"] {
            XCTAssertNotNil(object[key], key)
        }
        let first = (object["timestep_counts"] as! [[String: Any]])[0]
        XCTAssertEqual(Set(first.keys), ["count", "shared_accuracy", "shared_stderr", "independent_accuracy", "independent_stderr"])
        XCTAssertEqual(try AnalysisResult.load(url), result)
    }

    /// Count n of the shared curve is the classifier on the first n spread-ordered grid timesteps.
    func testSharedCountCurveMatchesTheClassifier() throws {
        let model = tinyModel(classes: 3)
        let s = schedule()
        let analysis = try TimestepAnalysis(T: 1000, points: 1, counts: [2, 4], seed: 1)
        let images = randomImages(3)
        let labels = [0, 1, 2]
        let r = try analysis.run(model: model, schedule: s, conditions: [0, 1, 2], images: images, labels: labels, indices: [0, 1, 2])
        var o = ClassifierOptions()
        o.seed = 1
        // The analysis scores the 1 single-timestep probe first, so count probes start at noise index 1.
        // Recompute with a scorer laid out the same way.
        var correct = 0
        let c = try Classifier(model: model, schedule: s, conditions: [0, 1, 2], strategy: FixedTimesteps(sampler: .grid(4)), options: o)
        for (i, x0) in images.enumerated() {
            let scorer = try c.makeScorer(x0, imageIndex: i)
            _ = scorer.addProbes(timesteps: analysis.singleTimesteps)
            let ids = scorer.addProbes(timesteps: r.countTimesteps.prefix(4))
            try scorer.score(candidates: [0, 1, 2], probes: [0] + ids)
            let means = (0..<3).map { k in ids.map { id in scorer.errors[k][scorer.probeIDs[k].firstIndex(of: id)!] }.reduce(0, +) }
            if means.indices.min(by: { (means[$0], $0) < (means[$1], $1) }) == labels[i] { correct += 1 }
        }
        XCTAssertEqual(r.timestepCounts[1].sharedAccuracy, Double(correct) / 3, accuracy: 1e-12)
    }
}
