import XCTest
import TensorEngine

final class NormalizationTests: XCTestCase {
    /// (shape, groups): odd sizes, batch 1, groups = 1, groups = C, rank 2 (no spatial dims), 3-D.
    let groupCases: [([Int], Int)] = [
        ([2, 6, 5, 7], 3), ([1, 32, 9, 11], 8), ([3, 4, 5], 1), ([2, 5, 3, 3], 5), ([1, 4], 2),
        ([2, 8, 3, 2, 3], 4), ([1, 1, 13], 1),
    ]

    func testGroupNormMatchesReference() {
        for (i, (shape, groups)) in groupCases.enumerated() {
            let c = shape[1]
            let x = randomTensor(shape, seed: UInt64(i), scale: 2, shift: 0.5)
            let w = randomTensor([c], seed: UInt64(100 + i)), b = randomTensor([c], seed: UInt64(200 + i))
            assertClose(x.groupNorm(groups: groups, weight: w, bias: b),
                        Reference.groupNorm(x, groups: groups, weight: w, bias: b), rtol: 1e-4, atol: 1e-5,
                        "groupNorm \(shape) groups \(groups)")
            assertClose(x.groupNorm(groups: groups), Reference.groupNorm(x, groups: groups), rtol: 1e-4, atol: 1e-5,
                        "groupNorm without affine \(shape) groups \(groups)")
            assertClose(x.groupNormSiLU(groups: groups, weight: w, bias: b, eps: 1e-6),
                        Reference.groupNormSiLU(x, groups: groups, weight: w, bias: b, eps: 1e-6),
                        rtol: 1e-4, atol: 1e-5, "groupNormSiLU \(shape) groups \(groups)")
        }
    }

    /// Statistics accumulate in Double over two passes: a large mean with a small spread is still
    /// normalised accurately (checked against a Double computation).
    func testGroupNormAccurateForLargeMeans() {
        let shape = [2, 4, 64, 64], groups = 2
        let x = randomTensor(shape, seed: 9, scale: 0.01, shift: 1000)
        let y = x.groupNorm(groups: groups, eps: 1e-5).scalars
        let xs = x.scalars.map(Double.init)
        let m = xs.count / (2 * groups)
        var worst = 0.0
        for u in 0..<(2 * groups) {
            let slice = xs[(u * m)..<((u + 1) * m)]
            let mean = slice.reduce(0, +) / Double(m)
            let variance = slice.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(m)
            for (j, v) in slice.enumerated() {
                let expected = (v - mean) / (variance + 1e-5).squareRoot()
                worst = Swift.max(worst, Swift.abs(Double(y[u * m + j]) - expected))
            }
        }
        XCTAssertLessThan(worst, 1e-4)
    }

    func testGroupNormKnownValues() {
        // One group of [1, 2, 3, 4]: mean 2.5, population variance 1.25.
        let x = Tensor(shape: [1, 2, 2], [1, 2, 3, 4])
        let r = 1 / Float(1.25 + 1e-5).squareRoot()
        assertClose(x.groupNorm(groups: 1), Tensor(shape: [1, 2, 2], [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r]), rtol: 1e-6)
        let w = Tensor(shape: [2], [2, 3]), b = Tensor(shape: [2], [1, -1])
        assertClose(x.groupNorm(groups: 2, weight: w, bias: b),
                    Tensor(shape: [1, 2, 2], [1 - 2 / Float(1 + 4e-5).squareRoot(), 1 + 2 / Float(1 + 4e-5).squareRoot(),
                                             -1 - 3 / Float(1 + 4e-5).squareRoot(), -1 + 3 / Float(1 + 4e-5).squareRoot()]),
                    rtol: 1e-6)
    }

    func testGroupNormGradientsMatchFiniteDifferences() {
        for (shape, groups) in [([2, 4, 3], 2), ([1, 3, 2, 2], 1), ([2, 3, 2], 3), ([1, 2], 1)] {
            let c = shape[1]
            let x = randomTensor(shape, seed: 1), w = randomTensor([c], seed: 2), b = randomTensor([c], seed: 3)
            checkGradients([x, w, b]) { $0[0].groupNorm(groups: groups, weight: $0[1], bias: $0[2]) }
            checkGradients([x, w, b]) { $0[0].groupNormSiLU(groups: groups, weight: $0[1], bias: $0[2]) }
            checkGradients([x]) { $0[0].groupNorm(groups: groups) }
            checkGradients([x, w]) { $0[0].groupNormSiLU(groups: groups, weight: $0[1]) }
        }
    }

    func testGroupNormBackwardMatchesReference() {
        for (i, (shape, groups)) in groupCases.enumerated() {
            let c = shape[1]
            let x = randomTensor(shape, seed: UInt64(300 + i), scale: 1.5, shift: -0.3)
            let w = randomTensor([c], seed: UInt64(400 + i)), b = randomTensor([c], seed: UInt64(500 + i))
            assertSameValueAndGradients([x, w, b], rtol: 1e-3, atol: 1e-4, "groupNorm \(shape) groups \(groups)",
                                        fast: { $0[0].groupNorm(groups: groups, weight: $0[1], bias: $0[2]) },
                                        reference: { Reference.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) })
            assertSameValueAndGradients([x, w, b], rtol: 1e-3, atol: 1e-4, "groupNormSiLU \(shape) groups \(groups)",
                                        fast: { $0[0].groupNormSiLU(groups: groups, weight: $0[1], bias: $0[2]) },
                                        reference: { Reference.groupNormSiLU($0[0], groups: groups, weight: $0[1], bias: $0[2]) })
        }
    }

    func testLayerNormMatchesReference() {
        for (i, shape) in [[3, 5, 16], [1, 7], [2, 77, 33], [4, 1], [1, 1, 9]].enumerated() {
            let d = shape.last!
            let x = randomTensor(shape, seed: UInt64(600 + i), scale: 2, shift: 1)
            let w = randomTensor([d], seed: UInt64(700 + i)), b = randomTensor([d], seed: UInt64(800 + i))
            assertClose(x.layerNorm(weight: w, bias: b), Reference.layerNorm(x, weight: w, bias: b),
                        rtol: 1e-4, atol: 1e-5, "layerNorm \(shape)")
            assertClose(x.layerNorm(), Reference.layerNorm(x), rtol: 1e-4, atol: 1e-5, "layerNorm no affine \(shape)")
            assertClose(x.layerNorm(weight: w), Reference.layerNorm(x, weight: w), rtol: 1e-4, atol: 1e-5,
                        "layerNorm weight only \(shape)")
            assertClose(x.layerNorm(bias: b), Reference.layerNorm(x, normalizedShape: [d], bias: b), rtol: 1e-4,
                        atol: 1e-5, "layerNorm bias only \(shape)")
        }
        // Over the last two dimensions.
        let x = randomTensor([2, 3, 4, 5], seed: 11)
        let w = randomTensor([4, 5], seed: 12), b = randomTensor([4, 5], seed: 13)
        assertClose(x.layerNorm(normalizedShape: [4, 5], weight: w, bias: b),
                    Reference.layerNorm(x, normalizedShape: [4, 5], weight: w, bias: b), rtol: 1e-4, atol: 1e-5)
        assertClose(x.layerNorm(normalizedShape: [4, 5]), Reference.layerNorm(x, normalizedShape: [4, 5]),
                    rtol: 1e-4, atol: 1e-5)
    }

    func testLayerNormGradients() {
        let x = randomTensor([2, 3, 4], seed: 21), w = randomTensor([4], seed: 22), b = randomTensor([4], seed: 23)
        checkGradients([x, w, b]) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        checkGradients([x]) { $0[0].layerNorm() }
        let w2 = randomTensor([3, 4], seed: 24), b2 = randomTensor([3, 4], seed: 25)
        checkGradients([x, w2, b2]) { $0[0].layerNorm(normalizedShape: [3, 4], weight: $0[1], bias: $0[2]) }
        checkGradients([randomTensor([1, 5], seed: 26), randomTensor([5], seed: 27)]) { $0[0].layerNorm(weight: $0[1]) }
        checkGradients([randomTensor([3, 5], seed: 28), randomTensor([5], seed: 29)]) {
            $0[0].layerNorm(normalizedShape: [5], bias: $0[1])
        }
        for (i, shape) in [[3, 5, 16], [1, 7], [2, 77, 33], [300, 40]].enumerated() {
            let d = shape.last!
            let x = randomTensor(shape, seed: UInt64(900 + i), scale: 2, shift: 1)
            let w = randomTensor([d], seed: UInt64(950 + i)), b = randomTensor([d], seed: UInt64(990 + i))
            assertSameValueAndGradients([x, w, b], rtol: 1e-3, atol: 1e-4, "layerNorm \(shape)",
                                        fast: { $0[0].layerNorm(weight: $0[1], bias: $0[2]) },
                                        reference: { Reference.layerNorm($0[0], weight: $0[1], bias: $0[2]) })
        }
    }

    func testIdenticalForOneAndTwoThreads() {
        let x = randomTensor([2, 64, 16, 16], seed: 31), w = randomTensor([64], seed: 32), b = randomTensor([64], seed: 33)
        assertSameForThreadCounts("groupNorm") {
            valueAndGradients([x, w, b]) { $0[0].groupNorm(groups: 32, weight: $0[1], bias: $0[2]) }
                + valueAndGradients([x, w, b]) { $0[0].groupNormSiLU(groups: 8, weight: $0[1], bias: $0[2]) }
        }
        let y = randomTensor([4, 77, 256], seed: 34), lw = randomTensor([256], seed: 35), lb = randomTensor([256], seed: 36)
        assertSameForThreadCounts("layerNorm") {
            valueAndGradients([y, lw, lb]) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        }
    }
}
