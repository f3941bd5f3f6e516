import Diffusion
@testable import DiffusionClassifier
import TensorEngine
import XCTest

/// DiffusionLogits, likelihood maximization and RDC on the tiny random model (8x8, 1 channel).
final class RDCTests: XCTestCase {
    let classes = 3
    lazy var model = tinyModel(classes: classes, seed: 3)
    let sched = schedule(T: 100)

    /// Pixels in [low, high], [n, 1, 8, 8].
    func images(_ n: Int, low: Float = 0.1, high: Float = 0.9, seed: UInt64 = 11) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return Tensor.uniform([n, 1, 8, 8], low: low, high: high, generator: &g)
    }

    func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return Tensor.randn(shape, generator: &g)
    }

    func dot(_ a: Tensor, _ b: Tensor) -> Double { zip(a.scalars, b.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    /// <grad f(x), v> against (f(x + hv) - f(x - hv)) / 2h for f = sum(c * logits).
    func checkGradient(_ clf: DifferentiableClassifier, x: Tensor, h: Float, tolerance: Double,
                       file: StaticString = #filePath, line: UInt = #line) -> (grad: Tensor, fd: Double) {
        let c = randomTensor([x.shape[0], clf.classCount], seed: 5)
        let v = randomTensor(x.shape, seed: 6)
        let f: (Tensor) -> Tensor = { (clf.logits($0, randomness: 42) * c).sum() }
        let grad = valueAndGradient(at: [x]) { f($0[0]) }.gradients[0]
        let plus = Autograd.noGrad { f(x + v * h).item }, minus = Autograd.noGrad { f(x - v * h).item }
        let fd = (Double(plus) - Double(minus)) / (2 * Double(h))
        let analytic = dot(grad, v)
        XCTAssertEqual(analytic, fd, accuracy: tolerance * Swift.max(1, Swift.abs(fd)), "analytic \(analytic), fd \(fd)",
                       file: file, line: line)
        return (grad, fd)
    }

    func head(batchSize: Int = 5) -> DiffusionLogits {
        DiffusionLogits(model: model, schedule: sched, conditions: Array(0..<classes), timesteps: [10, 50, 90],
                        weighting: .exponential(rate: 2), temperature: 3, batchSize: batchSize)
    }

    func testLogitsGradientMatchesFiniteDifferences() {
        let clf = head()
        XCTAssertTrue(clf.isRandomized)
        _ = checkGradient(clf, x: images(2), h: 1e-2, tolerance: 1e-2)
    }

    func testLogitsDoNotDependOnChunking() {
        let x = images(2)
        let a = Autograd.noGrad { head(batchSize: 4).logits(x, randomness: 9) }
        let b = Autograd.noGrad { head(batchSize: 100).logits(x, randomness: 9) }
        XCTAssertEqual(a.shape, [2, classes])
        for (p, q) in zip(a.scalars, b.scalars) { XCTAssertEqual(p, q, accuracy: 1e-5 * Swift.max(1, Swift.abs(p))) }
    }

    func testLogitsMatchTheScorersErrors() {
        // One image, uniform weights, tau 1: logits = -mean over timesteps of ImageScorer's l2 errors.
        let x = images(1)
        let ts = [20, 70]
        let clf = DiffusionLogits(model: model, schedule: sched, conditions: Array(0..<classes), timesteps: ts)
        let logits = Autograd.noGrad { clf.logits(x, randomness: 4) }
        let scorer = ImageScorer(model: model, schedule: sched, x0: Autograd.noGrad { x * 2 - 1 }, conditions: Array(0..<classes),
                                 loss: .l2, weights: TimestepWeighting.uniform.weights(schedule: sched), batchSize: 4,
                                 noise: SeededNoise(seed: 4, imageIndex: 0, shape: [1, 1, 8, 8]))
        try! scorer.score(candidates: Array(0..<classes), probes: scorer.addProbes(timesteps: ts))
        for k in 0..<classes { XCTAssertEqual(Double(logits.scalars[k]), -scorer.meanError(k)!, accuracy: 1e-4) }
    }

    func rdc(_ lm: LikelihoodMaximization) -> RobustDiffusionClassifier {
        RobustDiffusionClassifier(head: head(), lm: lm, unconditional: classes)
    }

    func testGradientThroughPaperLMStepsMatchesFiniteDifferences() throws {
        var lm = try LikelihoodMaximization(parsing: "steps=5,eta=8/255,variant=paper,norm=linf")
        lm.timestepRange = 20..<80
        // A quarter of the pixels at 0.002, so some end clipped at 0 (derivative 0 there: the
        // exact gradient is not BPDA's identity).
        let x = images(2, low: 0.005, high: 0.995, seed: 12)
        x.withMutableHostBuffer { for i in Swift.stride(from: 0, to: $0.count, by: 4) { $0[i] = 0.002 } }
        // h small enough that no sign(g) flips between x - hv and x + hv: LM's Jacobian-vector
        // product is then v times 0 or 1 in every pixel (h = 1e-3 flips two signs here).
        let h: Float = 1e-4
        let r = rdc(lm), v = randomTensor(x.shape, seed: 6)
        let p = Autograd.noGrad { r.purify(x + v * h, randomness: 42) }, m = Autograd.noGrad { r.purify(x - v * h, randomness: 42) }
        let ratio = zip(zip(p.scalars, m.scalars), v.scalars).map { ($0.0 - $0.1) / (2 * h) / $1 }
        XCTAssertTrue(ratio.allSatisfy { Swift.abs($0) < 0.05 || Swift.abs($0 - 1) < 0.05 }, "a sign flipped within h")
        XCTAssertTrue(ratio.contains { Swift.abs($0) < 0.05 }, "no pixel ends clipped: the test does not tell exact from BPDA")
        _ = checkGradient(r, x: x, h: h, tolerance: 2e-2)
    }

    /// d/dh sum(c LM(x + h v)) at 0 from autodiff through LM, and by central differences.
    func lmDirectionalDerivatives(_ lm: LikelihoodMaximization, x: Tensor, h: Float) -> (analytic: Double, numeric: Double) {
        let c = randomTensor(x.shape, seed: 14), v = randomTensor(x.shape, seed: 15)
        let f: (Tensor) -> Tensor = { (lm.run($0, model: self.model, schedule: self.sched, unconditional: self.classes, randomness: 7) * c).sum() }
        let grad = valueAndGradient(at: [x]) { f($0[0]) }.gradients[0]
        let plus = Autograd.noGrad { f(x + v * h).item }, minus = Autograd.noGrad { f(x - v * h).item }
        return (dot(grad, v), (Double(plus) - Double(minus)) / (2 * Double(h)))
    }

    func testExactGradientThroughL2AndAdamLMStepsMatchesFiniteDifferences() throws {
        // Five steps each; no projection or clip binds (small steps inside a large ball, pixels in
        // [0.2, 0.8]), so LM is smooth at x and central differences converge. first-order (inner
        // gradients held constant) must miss by far more than the tolerance, so the test tells the
        // two apart.
        let x = images(2, low: 0.2, high: 0.8, seed: 13)
        for options in ["variant=paper,norm=l2,eta=0.5,step=0.05", "variant=code,norm=linf,lr=0.004"] {
            let exact = try LikelihoodMaximization(parsing: "steps=5,t=20:80,grad=exact," + options)
            let firstOrder = try LikelihoodMaximization(parsing: "steps=5,t=20:80,grad=first-order," + options)
            let (a, fd) = lmDirectionalDerivatives(exact, x: x, h: 1e-3)
            let tolerance = 1e-2 * Swift.max(1, Swift.abs(fd))
            XCTAssertEqual(a, fd, accuracy: tolerance, "\(options): exact \(a), finite differences \(fd)")
            let (b, _) = lmDirectionalDerivatives(firstOrder, x: x, h: 1e-3)
            XCTAssertGreaterThan(Swift.abs(b - fd), 3 * tolerance, "\(options): first-order \(b) is as close to \(fd): the test cannot tell")
        }
    }

    func testBPDAIsIdentity() {
        var lm = LikelihoodMaximization()
        lm.gradient = .bpda
        let x = images(2), c = randomTensor([2, 1, 8, 8], seed: 8)
        let g = valueAndGradient(at: [x]) { (lm.run($0[0], model: model, schedule: sched, unconditional: classes, randomness: 1) * c).sum() }.gradients[0]
        XCTAssertEqual(g.scalars, c.scalars)
    }

    func testLMLowersTheUnconditionalLoss() throws {
        for variant in ["paper", "code"] {
            var lm = try LikelihoodMaximization(parsing: "steps=1,eta=0.02,variant=\(variant),lr=0.01")
            lm.timestepRange = 20..<80
            let x = images(2)
            let (t0, _, e0) = lm.draw(image: 0, step: 0, shape: [1, 1, 8, 8], schedule: sched, randomness: 3)
            let (t1, _, e1) = lm.draw(image: 1, step: 0, shape: [1, 1, 8, 8], schedule: sched, randomness: 3)
            let loss: (Tensor) -> Float = { x in
                Autograd.noGrad {
                    LikelihoodMaximization.unconditionalLoss(x, model: self.model, schedule: self.sched, unconditional: self.classes,
                                                             timesteps: [t0, t1], noise: Tensor.concat([e0, e1], axis: 0)).item
                }
            }
            let out = Autograd.noGrad { lm.run(x, model: model, schedule: sched, unconditional: classes, randomness: 3) }
            XCTAssertLessThan(loss(out), loss(x), variant)
        }
    }

    func testLMStaysInTheBallAndUnitRange() throws {
        let x = images(2, low: 0, high: 1)
        for options in ["variant=paper,norm=linf,step=0.05", "variant=paper,norm=l2,eta=0.5,step=0.3",
                        "variant=code,norm=linf,lr=0.5", "variant=code,norm=l2,eta=0.5,lr=0.5"] {
            let lm = try LikelihoodMaximization(parsing: "steps=3," + options)
            let out = Autograd.noGrad { lm.run(x, model: model, schedule: sched, unconditional: classes, randomness: 2) }
            let d = zip(out.scalars, x.scalars).map { $0 - $1 }
            XCTAssertTrue(out.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, options)
            for n in 0..<2 {
                let row = d[(n * 64)..<((n + 1) * 64)]
                switch lm.norm {
                case .linf: XCTAssertLessThanOrEqual(row.map(Swift.abs).max()!, Float(lm.eta) + 1e-6, options)
                case .l2: XCTAssertLessThanOrEqual(row.map { $0 * $0 }.reduce(0, +).squareRoot(), Float(lm.eta) + 1e-5, options)
                }
                XCTAssertGreaterThan(row.map(Swift.abs).max()!, 0, options)
            }
        }
    }

    func testSameSeedSameResult() throws {
        let clf = rdc(try LikelihoodMaximization(parsing: "steps=2,variant=code"))
        XCTAssertTrue(clf.isRandomized)
        let x = images(2)
        let a = Autograd.noGrad { clf.logits(x, randomness: 7) }, b = Autograd.noGrad { clf.logits(x, randomness: 7) }
        let c = Autograd.noGrad { clf.logits(x, randomness: 8) }
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertNotEqual(a.scalars, c.scalars)
    }

    func testFixedNoiseIsNotRandomized() {
        let eps = randomTensor([3, 1, 8, 8], seed: 2)
        let clf = DiffusionLogits(model: model, schedule: sched, conditions: [0, 1], timesteps: [10, 40, 70],
                                  noise: FileNoise(eps: eps, path: "test"))
        XCTAssertFalse(clf.isRandomized)
        let x = images(1)
        XCTAssertEqual(Autograd.noGrad { clf.logits(x, randomness: 1) }.scalars, Autograd.noGrad { clf.logits(x, randomness: 2) }.scalars)
    }

    func testSigmaToTimestep() {
        let s = schedule(T: 1000)
        let t = LikelihoodMaximization.timestep(sigma: 0.5, schedule: s)
        let sigma = { (t: Int) in ((1 - s.alphasCumprod[t]) / s.alphasCumprod[t]).squareRoot() }
        XCTAssertLessThanOrEqual(Swift.abs(sigma(t) - 0.5), Swift.abs(sigma(t + 1) - 0.5))
        XCTAssertLessThanOrEqual(Swift.abs(sigma(t) - 0.5), Swift.abs(sigma(t - 1) - 0.5))
    }

    func testOptionParser() throws {
        let lm = try LikelihoodMaximization(parsing: "steps=5,eta=8/255,variant=paper,norm=linf")
        XCTAssertEqual(lm.steps, 5)
        XCTAssertEqual(lm.eta, 8.0 / 255.0, accuracy: 1e-12)
        XCTAssertEqual(lm.alpha, 8.0 / 255.0 / 5, accuracy: 1e-12)
        let code = try LikelihoodMaximization(parsing: "variant=code,norm=l2,lr=0.2,sigma=0.3:0.7,grad=bpda,t=5:9")
        XCTAssertEqual(code.variant, .code)
        XCTAssertEqual(code.norm, .l2)
        XCTAssertEqual(code.learningRate, 0.2)
        XCTAssertEqual(code.sigmaRange, 0.3...0.7)
        XCTAssertEqual(code.timestepRange, 5..<9)
        XCTAssertEqual(code.gradient, .bpda)
        func message(_ text: String) -> String {
            do { _ = try LikelihoodMaximization(parsing: text); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("foo=1").contains("'foo'"))
        XCTAssertTrue(message("steps=x").contains("'x'") && message("steps=x").contains("'steps'"))
        XCTAssertTrue(message("variant=bogus").contains("'variant'"))
        XCTAssertTrue(message("eta=1/0").contains("'eta'"))
        XCTAssertTrue(message("norm").contains("key=value"))
        XCTAssertTrue(message("sigma=0.6:0.4").contains("'sigma'"))
    }

}
