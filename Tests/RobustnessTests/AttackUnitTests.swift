import XCTest
import DiffusionClassifier
import TensorEngine
@testable import Robustness

/// A fixed linear classifier on [N, 1, 4, 4] images with 4 classes; optionally randomized (a
/// logit offset that depends on `randomness`).
final class TinyLinear: DifferentiableClassifier {
    let weight: Tensor
    let randomized: Bool
    var classCount: Int { 4 }
    var isRandomized: Bool { randomized }
    init(randomized: Bool = false) {
        var g = RandomGenerator(seed: 3)
        weight = Tensor.randn([4, 16], generator: &g)
        self.randomized = randomized
    }
    func logits(_ x: Tensor, randomness: UInt64) -> Tensor {
        let z = x.flattened(from: 1).linear(weight: weight)
        guard randomized else { return z }
        var g = RandomGenerator(seed: randomness)
        return z + Tensor.randn([1, 4], std: 0.3, generator: &g)
    }
}

final class AttackUnitTests: XCTestCase {
    func testCheckpointSequenceMatchesAutoAttack() {
        // p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), times 100.
        XCTAssertEqual(APGDAttack.checkpoints(iterations: 100), [22, 41, 57, 70, 80, 87, 93, 99])
        var p: [Double] = [0, 0.22]
        while p.last! + max(p.last! - p[p.count - 2] - 0.03, 0.06) <= 1 {
            p.append(p.last! + max(p.last! - p[p.count - 2] - 0.03, 0.06))
        }
        XCTAssertEqual(APGDAttack.checkpoints(iterations: 100), p.dropFirst().map { Int(($0 * 100).rounded()) })
        XCTAssertEqual(APGDAttack.checkpoints(iterations: 10), [2, 3, 4, 5, 6, 7, 8, 9, 10])
    }

    func testStepHalvingRule() {
        // 4 steps, 3 increases: 3 > 0.75 * 4 is false -> 3 <= 3 halves.
        XCTAssertTrue(APGDAttack.shouldHalve(lossesSinceCheck: [0, 1, 2, 3, 2.5], halvedAtLastCheck: true,
                                             bestAtLastCheck: 0, best: 3))
        // 4 increases out of 4: no oscillation; best improved: keep.
        XCTAssertFalse(APGDAttack.shouldHalve(lossesSinceCheck: [0, 1, 2, 3, 4], halvedAtLastCheck: false,
                                              bestAtLastCheck: 0, best: 4))
        // No oscillation but best unchanged and not halved last time: halve.
        XCTAssertTrue(APGDAttack.shouldHalve(lossesSinceCheck: [0, 1, 2, 3, 4], halvedAtLastCheck: false,
                                             bestAtLastCheck: 5, best: 5))
        // Same, but halved last time: keep.
        XCTAssertFalse(APGDAttack.shouldHalve(lossesSinceCheck: [0, 1, 2, 3, 4], halvedAtLastCheck: true,
                                              bestAtLastCheck: 5, best: 5))
    }

    func testDLRLossOnHandMadeLogits() {
        let z: [Float] = [1, 3, 2, 0.5, 1, 3, 2, 0.5]
        // y = 0: -(1 - 3) / (3 - 1) = 1; y = 1: -(3 - 2) / (3 - 1) = -0.5.
        let v = AttackLoss.value(.dlr, logits: z, classCount: 4, labels: [0, 1])
        XCTAssertEqual(v[0], 1, accuracy: 1e-6)
        XCTAssertEqual(v[1], -0.5, accuracy: 1e-6)
        // Targeted, y = 1, t = 2: -(3 - 2) / (3 - (1 + 0.5) / 2) = -1 / 2.25.
        let t = AttackLoss.value(.dlrTargeted(targets: [2, 2]), logits: z, classCount: 4, labels: [1, 1])
        XCTAssertEqual(t[0], -1 / 2.25, accuracy: 1e-6)
        // Shift and scale invariance.
        let w = AttackLoss.value(.dlr, logits: z.map { $0 * 7 - 3 }, classCount: 4, labels: [0, 1])
        XCTAssertEqual(w[0], v[0], accuracy: 1e-5)
        XCTAssertEqual(w[1], v[1], accuracy: 1e-5)
        // Cross-entropy: log(sum exp) - z_y.
        let ce = AttackLoss.value(.crossEntropy, logits: z, classCount: 4, labels: [0, 1])
        let lse = Float(Foundation.log(Double(z[0..<4].map { Foundation.exp($0) }.reduce(0, +))))
        XCTAssertEqual(ce[0], lse - 1, accuracy: 1e-5)
    }

    func testDLRGradientFollowsSelectedLogits() {
        let z = Tensor(shape: [1, 4], [2, 3, 1, 0.5])
        let (_, g) = valueAndGradient(at: [z]) { AttackLoss.dlr.perImage($0[0], labels: [0]).sum() }
        // L = -(z0 - z1) / (z1 - z2) = 0.5: gradient [-1/2, 1/4, 1/4, 0] (sums to 0: shift invariance).
        let s = g[0].scalars
        for (a, b) in zip(s, [-0.5, 0.25, 0.25, 0] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func images(_ n: Int, seed: UInt64) -> (Tensor, [Int], TinyLinear) {
        var g = RandomGenerator(seed: seed)
        let x = Tensor.rand([n, 1, 4, 4], generator: &g)
        let model = TinyLinear()
        let z = model.logits(x, randomness: 0).scalars
        return (x, predictions(z, classCount: 4), model)   // labels = clean predictions
    }

    func assertInBudget(_ r: AttackResult, _ x: Tensor, _ budget: PerturbationBudget, file: StaticString = #filePath, line: UInt = #line) {
        let a = r.adversarial.scalars, c = x.scalars
        for i in a.indices {
            XCTAssert(a[i] >= 0 && a[i] <= 1, "pixel outside [0, 1]", file: file, line: line)
            if budget.norm == .linf {
                XCTAssert(a[i] >= c[i] - budget.epsilon && a[i] <= c[i] + budget.epsilon, "outside l_inf ball", file: file, line: line)
            }
        }
        if budget.norm == .l2 {
            for d in budget.distances(a, clean: c, imageSize: 16) { XCTAssertLessThanOrEqual(d, budget.epsilon * (1 + 1e-5), file: file, line: line) }
        }
    }

    func testAttacksRespectBudgetAndAreDeterministic() {
        let (x, y, model) = images(12, seed: 11)
        let attacks: [Attack] = [
            PGDAttack(budget: .linf(0.05), iterations: 5),
            PGDAttack(budget: .l2(0.3), iterations: 5),
            APGDAttack(budget: .linf(0.05), loss: .crossEntropy, iterations: 10),
            APGDAttack(budget: .l2(0.3), loss: .dlr, iterations: 10),
            APGDAttack(budget: .linf(0.05), loss: .targetedDLR, iterations: 5, targetCount: 3),
            SquareAttack(budget: .linf(0.05), queries: 30),
        ]
        for attack in attacks {
            var g1 = RandomGenerator(seed: 42), g2 = RandomGenerator(seed: 42), g3 = RandomGenerator(seed: 43)
            let r1 = attack.run(on: model, images: x, labels: y, generator: &g1)
            let r2 = attack.run(on: model, images: x, labels: y, generator: &g2)
            let r3 = attack.run(on: model, images: x, labels: y, generator: &g3)
            XCTAssertEqual(r1.adversarial.scalars, r2.adversarial.scalars, attack.name)
            XCTAssertEqual(r1.success, r2.success, attack.name)
            XCTAssertEqual(r1.forwardCalls, r2.forwardCalls, attack.name)
            XCTAssertNotEqual(r1.adversarial.scalars, r3.adversarial.scalars, attack.name)
            assertInBudget(r1, x, attack.budget)
            // Success flags agree with the classifier on the returned images.
            let pred = predictions(model.logits(r1.adversarial, randomness: 0).scalars, classCount: 4)
            XCTAssertEqual(r1.success, zip(pred, y).map { $0 != $1 }, attack.name)
            XCTAssertGreaterThan(r1.forwardCalls, 0)
            if attack is SquareAttack { XCTAssertEqual(r1.backwardCalls, 0); XCTAssertLessThanOrEqual(r1.queries, 12 * 30) }
        }
    }

    func testCallCounts() {
        let (x, y, model) = images(4, seed: 5)
        var g = RandomGenerator(seed: 1)
        // One start gradient + one per iteration, one restart; EOT ignored for a deterministic model.
        let r = APGDAttack(budget: .linf(0.001), iterations: 7, eot: EOTSettings(eotDraws: 5)).run(on: model, images: x, labels: y, generator: &g)
        XCTAssertEqual(r.backwardCalls, 8)
        XCTAssertEqual(r.forwardCalls, 8)
        let rm = TinyLinear(randomized: true)
        var g2 = RandomGenerator(seed: 1)
        let r2 = APGDAttack(budget: .linf(0.001), iterations: 7, eot: EOTSettings(eotDraws: 5)).run(on: rm, images: x, labels: y, generator: &g2)
        XCTAssertEqual(r2.backwardCalls, 40)
    }

    func testEOTAveragesGradientsOverDraws() {
        final class Scaled: DifferentiableClassifier {
            let inner = TinyLinear()
            var classCount: Int { 4 }
            var isRandomized: Bool { true }
            func logits(_ x: Tensor, randomness: UInt64) -> Tensor {
                var g = RandomGenerator(seed: randomness)
                return inner.logits(x, randomness: 0) * (0.5 + g.nextFloat())
            }
        }
        let (x, y, _) = images(3, seed: 4)
        let model = Scaled()
        let oracle = ClassifierOracle(model, eot: EOTSettings(eotDraws: 3, evaluationRandomness: 17), imageShape: [1, 4, 4])
        var g = RandomGenerator(seed: 5)
        var copy = g
        let (loss, grad, logits) = oracle.lossAndGradient(x.scalars, count: 3, labels: y, loss: .crossEntropy, generator: &g)
        let draws: [UInt64] = [17, copy.nextUInt64(), copy.nextUInt64()]
        var meanGrad = [Float](repeating: 0, count: 48), meanLoss = [Float](repeating: 0, count: 3)
        for r in draws {
            let (_, gr) = valueAndGradient(at: [x]) { AttackLoss.crossEntropy.perImage(model.logits($0[0], randomness: r), labels: y).sum() }
            for i in 0..<48 { meanGrad[i] += gr[0].scalars[i] / 3 }
            let l = AttackLoss.value(.crossEntropy, logits: model.logits(x, randomness: r).scalars, classCount: 4, labels: y)
            for i in 0..<3 { meanLoss[i] += l[i] / 3 }
        }
        for i in 0..<48 { XCTAssertEqual(grad[i], meanGrad[i], accuracy: 1e-5) }
        for i in 0..<3 { XCTAssertEqual(loss[i], meanLoss[i], accuracy: 1e-5) }
        XCTAssertEqual(logits, model.logits(x, randomness: 17).scalars)
        XCTAssertEqual(oracle.backwardCalls, 3)
        XCTAssertEqual(RobustnessEvaluation.standard(budget: .linf(0.03)).attacks.map(\.name), ["APGD-CE", "APGD-T", "Square"])
        XCTAssertEqual(RobustnessEvaluation.randomized(budget: .l2(0.5)).attacks.map(\.name), ["APGD-CE", "APGD-DLR"])
    }

    func testEvaluationStopsAtFirstSuccess() {
        let (x, y, model) = images(10, seed: 8)
        let eval = RobustnessEvaluation(attacks: [APGDAttack(budget: .linf(0.3), iterations: 10),
                                                  SquareAttack(budget: .linf(0.3), queries: 20)], batchSize: 3)
        let report = eval.run(on: model, images: x, labels: y, generator: RandomGenerator(seed: 9))
        XCTAssertEqual(report.outcomes.count, 10)
        XCTAssertEqual(report.cleanAccuracy, 1)
        XCTAssertEqual(report.attacks[0].attacked, 10)
        XCTAssertEqual(report.attacks[1].attacked, 10 - report.attacks[0].broken)
        let pred = predictions(model.logits(report.adversarial, randomness: 0).scalars, classCount: 4)
        for o in report.outcomes {
            XCTAssertEqual(o.brokenBy != nil, pred[o.index] != o.label)
        }
        XCTAssertEqual(report.robustAccuracy, report.attacks[1].robustAccuracyAfter, accuracy: 1e-12)
    }
}
