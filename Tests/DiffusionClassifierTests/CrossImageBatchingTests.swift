import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Cross-image batching (`CrossImageBatcher`): images classified together, their (class, probe)
/// pairs pooled into shared U-Net calls, give exactly (bit for bit) what each gives alone, for any
/// number of images in flight and batch size; run folders get the same lines in the same order.
final class CrossImageBatchingTests: XCTestCase {
    let images = randomImages(7)

    /// The shipped model's layout (28x28; 3 levels, attention at 14x14 and 7x7) at fewer channels.
    func shippedLikeModel() -> UNet2DModel {
        var c = UNet2DConfig()
        c.sampleSize = [28, 28]
        c.inChannels = 1
        c.outChannels = 1
        c.blockOutChannels = [16, 32, 48]
        c.layersPerBlock = 1
        c.downBlockTypes = [.downBlock2D, .attnDownBlock2D, .attnDownBlock2D]
        c.upBlockTypes = [.attnUpBlock2D, .attnUpBlock2D, .upBlock2D]
        c.normNumGroups = 8
        c.attentionHeadDim = 16
        c.numClassEmbeds = 11
        return UNet2DModel(config: c, seed: 3)
    }

    func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    /// A U-Net output row is the same alone, in its batch, and among other items.
    func testUNetOutputOfAnItemDoesNotDependOnItsBatch() throws {
        try XCTSkipUnless(BLASCore.rowsArePositionIndependent(family: BLASCore.loaded),
                          "BLAS kernels \(BLASCore.loaded): rows are not position-independent there (docs/engine.md); make test picks tools/best-blas-core.sh's family")
        let model = shippedLikeModel()
        var g = RandomGenerator(seed: 5)
        let n = 13
        let x = Tensor.randn([n, 1, 28, 28], generator: &g)
        let ts: [Float] = (0..<n).map { Float(($0 * 77) % 1000) }
        let labels = Tensor(shape: [n], (0..<n).map { Float($0 % 10) })
        let together = Autograd.noGrad { bits(model.predict(x, timesteps: ts, conditions: labels)) }
        let per = together.count / n
        for i in [0, 4, n - 1] {
            let alone = Autograd.noGrad { bits(model.predict(x.gatherRows([i]), timesteps: [ts[i]], conditions: Tensor(shape: [1], [Float(i % 10)]))) }
            XCTAssertEqual(alone[...], together[(i * per)..<((i + 1) * per)], "item \(i) alone")
        }
        let order = Array((0..<n).reversed()) + [2, 3]
        let shuffled = Autograd.noGrad {
            bits(model.predict(x.gatherRows(order), timesteps: order.map { ts[$0] }, conditions: Tensor(shape: [order.count], order.map { Float($0 % 10) })))
        }
        for (k, i) in order.enumerated() {
            XCTAssertEqual(shuffled[(k * per)..<((k + 1) * per)], together[(i * per)..<((i + 1) * per)], "item \(i) at place \(k) of a batch of \(order.count)")
        }
    }

    func methods() throws -> [(String, ClassificationStrategy)] {
        [("leader-gap", SequentialElimination(rule: LeaderGapRule(threshold: 1), sampler: .grid(16), minScores: 2)),
         ("t-test", SequentialElimination(rule: PairedTTestRule(pValue: 0.3), sampler: .stratified(12), minScores: 3, testEvery: 2)),
         ("staged", try StagedElimination(parsing: "2:2,1:6")),
         ("fixed", FixedTimesteps(sampler: .grid(3)))]
    }

    func classify(_ strategy: ClassificationStrategy, model: ConditionalNoisePredictor, batchSize: Int, inFlight: Int,
                  noiseByTimestep: Bool) throws -> [Classification] {
        var o = ClassifierOptions()
        o.batchSize = batchSize
        o.imagesInFlight = inFlight
        o.seed = 4
        o.noiseNumbering = noiseByTimestep ? .timestep : .probe
        let c = try Classifier(model: model, schedule: schedule(), conditions: [0, 1, 2, 3], strategy: strategy, options: o)
        return try c.classify(images: images.enumerated().map { ($1, $0) })
    }

    func testClassificationsDoNotDependOnImagesInFlightOrBatchSize() throws {
        let model = tinyModel()
        for (name, strategy) in try methods() {
            for byTimestep in [false, true] {
                let alone = try classify(strategy, model: model, batchSize: 1, inFlight: 1, noiseByTimestep: byTimestep)
                for (batch, inFlight) in [(256, 1), (7, 3), (256, 4), (3, 16)] {
                    let together = try classify(strategy, model: model, batchSize: batch, inFlight: inFlight, noiseByTimestep: byTimestep)
                    for (a, b) in zip(alone, together) {
                        let what = "\(name), noise by \(byTimestep ? "timestep" : "probe"), batch \(batch), \(inFlight) in flight"
                        XCTAssertEqual(a.prediction, b.prediction, what)
                        XCTAssertEqual(a.calls, b.calls, what)
                        XCTAssertEqual(a.probeTimesteps, b.probeTimesteps, what)
                        XCTAssertEqual(a.meanErrors.map { $0?.bitPattern }, b.meanErrors.map { $0?.bitPattern }, what)
                        XCTAssertEqual(a.probeErrors.map { $0.map { $0?.bitPattern } }, b.probeErrors.map { $0.map { $0?.bitPattern } }, what)
                        XCTAssertEqual(a.probabilities.map(\.bitPattern), b.probabilities.map(\.bitPattern), what)
                    }
                }
            }
        }
    }

    /// The pairs of the images in flight go to the model together: fewer, larger calls.
    func testPairsOfImagesInFlightShareModelCalls() throws {
        let spy = CountingPredictor(tinyModel())
        let strategy = SequentialElimination(rule: LeaderGapRule(threshold: 1), sampler: .grid(16), minScores: 2)
        _ = try classify(strategy, model: spy, batchSize: 256, inFlight: 1, noiseByTimestep: false)
        let alone = spy.batches
        spy.batches = []
        _ = try classify(strategy, model: spy, batchSize: 256, inFlight: 7, noiseByTimestep: false)
        XCTAssertEqual(alone.reduce(0, +), spy.batches.reduce(0, +), "the same pairs")
        XCTAssertLessThan(spy.batches.count, alone.count)
        XCTAssertEqual(spy.batches.first, 7 * 4 * 2, "the first round of all seven images in one call")
    }

    /// An error in one image is rethrown after the images in flight finish; no other image starts.
    func testAnErrorInOneImageIsRethrown() throws {
        var o = ClassifierOptions()
        o.imagesInFlight = 3
        let c = try Classifier(model: tinyModel(), schedule: schedule(), conditions: [0, 1, 2, 3], strategy: FixedTimesteps(sampler: .grid(2)), options: o)
        var started: [Int] = []
        struct Boom: Error {}
        XCTAssertThrowsError(try c.batcher.run(10) { j in
            started.append(j)
            if j == 1 { throw Boom() }
            _ = try c.classify(images[j % 7], imageIndex: j)
        }) { XCTAssertTrue($0 is Boom) }
        XCTAssertLessThan(started.count, 10)
    }

    /// An evaluation run with images in flight writes the lines a one-at-a-time run writes, in
    /// index order (timing aside).
    func testEvaluationRunWritesTheSameLines() throws {
        let tmp = try temporaryDirectory("crossimage")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let model = tinyModel(classes: 3)
        var s = EvaluationSettings(model: "tiny", dataset: "random", split: "test", classes: 3, schedule: schedule(),
                                   method: .leaderGap(LeaderGapSettings(sampler: .grid(16))), seed: 2)
        s.saveErrors = true
        func lines(_ dir: String, inFlight: Int, batch: Int) throws -> [String] {
            let r = try EvaluationRun(directory: tmp.appendingPathComponent(dir), settings: s)
            let c = try s.makeClassifier(model: model, schedule: schedule(), batchSize: batch, imagesInFlight: inFlight)
            let summary = try r.run(indices: Array(0..<7), labels: [0, 2, 1, 1, 0, 2, 1], classNames: ["a", "b", "c"], scope: RunScope(),
                                    batchSize: batch, image: { self.images[$0] }, classify: { try c.classify($0, imageIndex: $1) },
                                    batcher: c.batcher)
            XCTAssertEqual(summary.n, 7)
            XCTAssertGreaterThan(summary.totalSeconds, 0)
            let text = try String(contentsOf: tmp.appendingPathComponent("\(dir)/results.jsonl"), encoding: .utf8)
            return text.split(separator: "\n").map { $0.replacingOccurrences(of: #""seconds":[0-9.e-]+"#, with: "", options: .regularExpression) }
        }
        let one = try lines("one", inFlight: 1, batch: 1)
        XCTAssertEqual(one.count, 7)
        XCTAssertEqual(try lines("many", inFlight: 4, batch: 256), one)
    }
}

/// Forwards to a model and records each call's batch size.
final class CountingPredictor: ConditionalNoisePredictor {
    let base: ConditionalNoisePredictor
    var batches: [Int] = []
    init(_ base: ConditionalNoisePredictor) { self.base = base }
    func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        batches.append(sample.shape[0])
        return base.predict(sample, timesteps: timesteps, conditions: conditions)
    }
}
