import Foundation
import XCTest
import TensorEngine

final class ElementwiseTests: XCTestCase {
    func testBroadcastValues() {
        let a = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3], [10, 20, 30])
        XCTAssertEqual((a + b).scalars, [11, 22, 33, 14, 25, 36])
        let c = Tensor(shape: [2, 1], [100, 200])
        XCTAssertEqual((a * c).scalars, [100, 200, 300, 800, 1000, 1200])
        XCTAssertEqual((c - a).shape, [2, 3])
        let bias = Tensor(shape: [1, 2, 1, 1], [1, -1])
        let x = Tensor.ones([2, 2, 2, 2])
        XCTAssertEqual((x + bias).scalars, [2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0])
    }

    func testBroadcastMatchesExplicitLoop() {
        // Shapes that exercise every inner-loop case of the broadcast kernel.
        let cases: [([Int], [Int])] = [([4, 1, 5], [1, 3, 1]), ([2, 3, 4, 5], [3, 1, 5]), ([1], [3, 2]),
                                        ([7, 1], [1, 9]), ([2, 1, 3], [2, 4, 1]), ([], [2, 2])]
        for (sa, sb) in cases {
            let a = randomTensor(sa, seed: 3), b = randomTensor(sb, seed: 4)
            let out = a - b
            let shape = out.shape
            let r = shape.count
            let pa = a.shape.count, pb = b.shape.count
            var expected = [Float]()
            for flat in 0..<out.count {
                var idx = [Int](repeating: 0, count: r), rem = flat
                for d in stride(from: r - 1, through: 0, by: -1) { idx[d] = rem % shape[d]; rem /= shape[d] }
                func read(_ t: Tensor, _ rank: Int) -> Float {
                    var off = 0
                    for d in 0..<rank {
                        let i = t.shape[d] == 1 ? 0 : idx[d + r - rank]
                        off = off * t.shape[d] + i
                    }
                    return t.scalars[off]
                }
                expected.append(read(a, pa) - read(b, pb))
            }
            XCTAssertEqual(out.scalars, expected, "\(sa) - \(sb)")
        }
    }

    func testBinaryGradients() {
        let a = randomTensor([2, 3, 4], seed: 1), b = randomTensor([3, 1], seed: 2, shift: 3)
        checkGradients([a, b]) { $0[0] + $0[1] }
        checkGradients([a, b]) { $0[0] - $0[1] }
        checkGradients([a, b]) { $0[0] * $0[1] }
        checkGradients([a, b]) { $0[0] / $0[1] }
        let pos = randomTensor([3, 4], seed: 5, scale: 0.2, shift: 1.5)
        checkGradients([pos, randomTensor([4], seed: 6, scale: 0.5)]) { $0[0].pow($0[1]) }
        // Keep operands apart so no tie falls inside the finite-difference step.
        let m1 = Tensor(shape: [2, 3], [0.1, 2, -1, 3, 0.5, -2])
        let m2 = Tensor(shape: [3], [1, 0, 0.2])
        checkGradients([m1, m2]) { $0[0].minimum($0[1]) }
        checkGradients([m1, m2]) { $0[0].maximum($0[1]) }
    }

    func testScalarGradients() {
        let x = randomTensor([3, 5], seed: 7, shift: 2)
        checkGradients([x]) { $0[0] * 3 + 1 }
        checkGradients([x]) { 2 - $0[0] / 4 }
        checkGradients([x]) { 1 / $0[0] }
        checkGradients([x]) { -$0[0] }
        checkGradients([x]) { $0[0].pow(1.5) }
        checkGradients([x]) { $0[0].square() }
    }

    func testUnaryGradients() {
        let x = randomTensor([4, 6], seed: 11)
        let pos = randomTensor([4, 6], seed: 12, scale: 0.3, shift: 2)
        checkGradients([x]) { $0[0].exp() }
        checkGradients([pos]) { $0[0].log() }
        checkGradients([pos]) { $0[0].sqrt() }
        checkGradients([pos]) { $0[0].rsqrt() }
        checkGradients([x]) { $0[0].sigmoid() }
        checkGradients([x]) { $0[0].tanh() }
        checkGradients([x]) { $0[0].silu() }
        checkGradients([x]) { $0[0].gelu() }
        checkGradients([x]) { $0[0].gelu(approximate: true) }
        checkGradients([x]) { $0[0].quickGelu() }
        checkGradients([x]) { $0[0].softplus() }
        // Kinks: keep points away from 0 and the clamp bounds.
        let away = Tensor(shape: [6], [-2, -0.7, -0.3, 0.4, 0.9, 2.5])
        checkGradients([away]) { $0[0].abs() }
        checkGradients([away]) { $0[0].clamp(min: -0.5, max: 1) }
        checkGradients([away]) { $0[0].relu() }
        checkGradients([away]) { $0[0].sign() * $0[0] }
    }

    func testUnaryValuesAgainstFoundation() {
        let xs: [Float] = [-30, -9.5, -3, -1, -0.1, -0.01, -1e-5, 0, 1e-5, 0.03, 0.07, 0.5, 1, 2.5, 8, 30]
        let x = Tensor(shape: [xs.count], xs)
        for (i, v) in x.tanh().scalars.enumerated() {
            XCTAssertEqual(v, Foundation.tanh(xs[i]), accuracy: 1e-6 + 2e-6 * Swift.abs(Foundation.tanh(xs[i])), "tanh(\(xs[i]))")
        }
        for (i, v) in x.sigmoid().scalars.enumerated() {
            XCTAssertEqual(Double(v), 1 / (1 + Foundation.exp(-Double(xs[i]))), accuracy: 1e-6)
        }
        for (i, v) in x.gelu().scalars.enumerated() {
            let d = Double(xs[i])
            XCTAssertEqual(Double(v), 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot())), accuracy: 1e-5)
        }
        for (i, v) in x.softplus().scalars.enumerated() {
            let d = Double(xs[i])
            XCTAssertEqual(Double(v), Foundation.log1p(Foundation.exp(d)), accuracy: 1e-5 * Swift.max(1, Swift.abs(d)))
        }
        XCTAssertEqual(x.sign().scalars.prefix(8), [-1, -1, -1, -1, -1, -1, -1, 0])
    }

    func testWhereSelectsAndRoutesGradients() {
        let cond = Tensor(shape: [2, 1], [1, 0])
        let a = randomTensor([2, 3], seed: 21), b = randomTensor([3], seed: 22)
        let out = Tensor.where(cond, a, b)
        XCTAssertEqual(Array(out.scalars[0..<3]), Array(a.scalars[0..<3]))
        XCTAssertEqual(Array(out.scalars[3..<6]), b.scalars)
        checkGradients([a, b]) { Tensor.where(cond, $0[0], $0[1]) }
        // An infinity in the branch not taken must not leak into the result.
        let inf = Tensor(shape: [2], [Float.infinity, 1])
        XCTAssertEqual(Tensor.where(Tensor(shape: [2], [0, 1]), inf, Tensor.zeros([2])).scalars, [0, 1])
    }

    func testNoGradRecordsNothing() {
        let x = randomTensor([3], seed: 1, requiresGrad: true)
        let y = Autograd.noGrad { (x * x).exp() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertNil(y.gradFunction)
        let z = (x * x).exp()
        XCTAssertTrue(z.requiresGrad)
    }

    func testGradientAccumulatesAcrossBackwardCallsAndSharedUse() {
        let x = Tensor(shape: [2], [1, 2], requiresGrad: true)
        let y = x * x + x   // x used twice in the graph
        y.sum().backward()
        XCTAssertEqual(x.grad!.scalars, [3, 5])
        (x * 2).sum().backward()
        XCTAssertEqual(x.grad!.scalars, [5, 7])
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testValueAndGradientLeavesInputsUntouched() {
        let x = Tensor(shape: [3], [1, 2, 3])
        let (v, g) = valueAndGradient(at: [x]) { ($0[0] * $0[0]).sum() }
        XCTAssertEqual(v.item, 14)
        XCTAssertEqual(g[0].scalars, [2, 4, 6])
        XCTAssertNil(x.grad)
        XCTAssertFalse(x.requiresGrad)
    }

    func testThreadCountDoesNotChangeResults() {
        let saved = Engine.threads
        defer { Engine.threads = saved }
        let a = randomTensor([3, 70_001], seed: 31), b = randomTensor([70_001], seed: 32)
        func run() -> [Float] {
            let y = (a * b).tanh().sum(axes: [1]) + a.mean()
            return y.scalars + (a - b).max(axes: [0]).scalars.prefix(100) + a.sum(axes: [0]).scalars.prefix(100)
        }
        Engine.threads = 1
        let one = run()
        Engine.threads = 2
        XCTAssertEqual(run(), one)
        Engine.threads = 3
        XCTAssertEqual(run(), one)
    }
}
