import Diffusion
import DiffusionClassifier
import NeuralNetworks
import TensorEngine
import XCTest

final class ScoringTests: XCTestCase {
    func testLossesOnHandMadeNumbers() {
        let pred = Tensor(shape: [2, 1, 1, 4], [1, 0.5, -2, 3, 0.25, 0.25, 0.25, 0.25])
        let target = Tensor(shape: [2, 1, 1, 4], [0, 0, 0, 0, 0.25, -0.75, 1.25, 2.25])
        // d = (1, .5, -2, 3) and (0, 1, -1, -2)
        XCTAssertEqual(ErrorLoss.l2.perItem(prediction: pred, target: target), [3.5625, 1.5])
        XCTAssertEqual(ErrorLoss.l1.perItem(prediction: pred, target: target), [1.625, 1.0])
        // huber, delta 1: 0.5 d^2 for |d| < 1, else |d| - 0.5
        XCTAssertEqual(ErrorLoss.huber.perItem(prediction: pred, target: target), [(0.5 + 0.125 + 1.5 + 2.5) / 4, (0 + 0.5 + 0.5 + 1.5) / 4])
        XCTAssertEqual(ErrorLoss.huber.value(0.999), 0.5 * 0.999 * 0.999, accuracy: 1e-7)
    }

    func testEveryClassSeesTheSameNoisySample() throws {
        let spy = SpyPredictor()
        let s = schedule()
        let x0 = randomImages(1)[0]
        let timesteps = [10, 500, 990]
        let classifier = try Classifier(model: spy, schedule: s, conditions: [0, 1, 2],
                                        strategy: FixedTimesteps(sampler: .explicit(timesteps)), options: {
                                            var o = ClassifierOptions(); o.batchSize = 4; o.seed = 9; return o }())
        let result = try classifier.classify(x0, imageIndex: 5)
        XCTAssertEqual(result.calls, 9)
        XCTAssertEqual(spy.calls.count, 9)
        let noise = SeededNoise(seed: 9, imageIndex: 5, shape: [1, 1, 8, 8])
        for (k, t) in timesteps.enumerated() {
            let seen = spy.calls.filter { $0.timestep == Float(t) }
            XCTAssertEqual(seen.map(\.condition), [0, 1, 2])
            let expected = s.addNoise(x0, noise: try noise.noise(k), timesteps: [t]).scalars
            for call in seen { XCTAssertEqual(call.sample, expected, "t=\(t) class \(call.condition)") }
        }
        // Zero output: the l2 error is mean(eps^2), the same for every class.
        XCTAssertEqual(result.meanErrors[0], result.meanErrors[1])
        XCTAssertEqual(result.meanErrors[1], result.meanErrors[2])
    }

    func testSeededNoiseDependsOnlyOnSeedIndexAndDraw() throws {
        let a = SeededNoise(seed: 3, imageIndex: 10, shape: [1, 1, 8, 8])
        XCTAssertEqual(try a.noise(2).scalars, try SeededNoise(seed: 3, imageIndex: 10, shape: [1, 1, 8, 8]).noise(2).scalars)
        XCTAssertNotEqual(try a.noise(2).scalars, try a.noise(1).scalars)
        XCTAssertNotEqual(try a.noise(0).scalars, try SeededNoise(seed: 3, imageIndex: 11, shape: [1, 1, 8, 8]).noise(0).scalars)
        XCTAssertNotEqual(try a.noise(0).scalars, try SeededNoise(seed: 4, imageIndex: 10, shape: [1, 1, 8, 8]).noise(0).scalars)
        // Draw k is the k-th of consecutive draws from the image generator.
        var g = SeededNoise.imageGenerator(seed: 3, imageIndex: 10)
        _ = Tensor.randn([1, 1, 8, 8], generator: &g)
        _ = Tensor.randn([1, 1, 8, 8], generator: &g)
        XCTAssertEqual(Tensor.randn([1, 1, 8, 8], generator: &g).scalars, try a.noise(2).scalars)
    }

    func testNoiseFileIsUsedInOrder() throws {
        let dir = try temporaryDirectory("noise")
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = RandomGenerator(seed: 1)
        let eps = Tensor.randn([2, 1, 8, 8], generator: &g)
        let url = dir.appendingPathComponent("noise.safetensors")
        try Safetensors.write(["eps": eps], to: url)
        let file = try FileNoise(url: url)
        XCTAssertEqual(try file.noise(1).scalars, eps.sliced(axis: 0, 1..<2).scalars)
        XCTAssertThrowsError(try file.noise(2)) { e in XCTAssertTrue("\(e)".contains("noise.safetensors") && "\(e)".contains("2 draws"), "\(e)") }
        let spy = SpyPredictor()
        let x0 = randomImages(1)[0]
        let c = try Classifier(model: spy, schedule: schedule(), conditions: [0, 1], strategy: FixedTimesteps(sampler: .explicit([100, 700])),
                               noiseFile: file)
        _ = try c.classify(x0, imageIndex: 0)
        XCTAssertEqual(spy.calls[1].sample, schedule().addNoise(x0, noise: eps.sliced(axis: 0, 1..<2), timesteps: [700]).scalars)
        let tooMany = try Classifier(model: spy, schedule: schedule(), conditions: [0], strategy: FixedTimesteps(sampler: .grid(3)), noiseFile: file)
        XCTAssertThrowsError(try tooMany.classify(x0, imageIndex: 0))
    }

    /// An oracle that returns the model target for the true x0: its eps-space error must vanish
    /// whatever the prediction type (so v- and x0-outputs are converted to eps).
    func testPredictionTypesAreScoredInEpsSpace() throws {
        let x0 = randomImages(1)[0]
        for type in ["epsilon", "v_prediction", "sample"] {
            let s = schedule(type)
            let spy = SpyPredictor()
            spy.respond = { xt, ts, _ in
                let t = ts.map { Int($0) }
                let n = xt.shape[0]
                let x = x0.expanded(to: xt.shape)
                let (a, b) = (t.map { s.coefficients($0).signal }, t.map { s.coefficients($0).noise })
                let eps = (xt - x * Tensor(shape: [n, 1, 1, 1], a)) / Tensor(shape: [n, 1, 1, 1], b)
                return s.target(x0: x, noise: eps, timesteps: t)
            }
            let c = try Classifier(model: spy, schedule: s, conditions: [0, 1], strategy: FixedTimesteps(sampler: .explicit([50, 400, 800])))
            let r = try c.classify(x0, imageIndex: 3)
            for e in r.meanErrors { XCTAssertLessThan(e!, 1e-6, type) }
        }
        // v-prediction of zero: eps_hat = sqrt(1 - abar) x_t.
        let s = schedule("v_prediction")
        let c = try Classifier(model: SpyPredictor(), schedule: s, conditions: [0], strategy: FixedTimesteps(sampler: .explicit([300])),
                               options: { var o = ClassifierOptions(); o.seed = 2; return o }())
        let eps = try SeededNoise(seed: 2, imageIndex: 0, shape: x0.shape).noise(0)
        let xt = s.addNoise(x0, noise: eps, timesteps: [300])
        let expected = ErrorLoss.l2.perItem(prediction: xt * s.coefficients(300).noise, target: eps)[0]
        XCTAssertEqual(try c.classify(x0, imageIndex: 0).meanErrors[0]!, expected, accuracy: 1e-12)
    }
}
