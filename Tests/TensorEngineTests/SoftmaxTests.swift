import Foundation
import XCTest
import TensorEngine

final class SoftmaxTests: XCTestCase {
    /// (shape, axis) pairs: last axis, middle and first axes, odd sizes, batch 1, and an inner
    /// extent over the 256-column block of the strided path.
    let cases: [([Int], Int)] = [
        ([1, 7], -1), ([3, 5, 17], -1), ([3, 5, 17], 1), ([3, 5, 17], 0), ([2, 3, 300], 1),
        ([1], 0), ([4, 33], 0), ([2, 1, 9], 1), ([5, 1000], -1), ([2, 13, 7, 3], 2),
    ]

    func testSoftmaxMatchesReference() {
        for (i, (shape, axis)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(10 + i), scale: 3)
            assertClose(x.softmax(axis: axis), Reference.softmax(x, axis: axis), rtol: 1e-5, atol: 1e-7,
                        "softmax \(shape) axis \(axis)")
            assertClose(x.logSoftmax(axis: axis), Reference.logSoftmax(x, axis: axis), rtol: 1e-5, atol: 1e-5,
                        "logSoftmax \(shape) axis \(axis)")
        }
    }

    func testRowsSumToOneAndLargeValuesStayFinite() {
        let x = randomTensor([6, 50], seed: 3, scale: 1000, shift: 5000)
        let y = x.softmax()
        for s in y.sum(axes: [1]).scalars { XCTAssertEqual(s, 1, accuracy: 1e-5) }
        XCTAssert(x.logSoftmax().scalars.allSatisfy(\.isFinite))
        assertClose(x.logSoftmax(), Reference.logSoftmax(x), rtol: 1e-5, atol: 1e-3)
        // exp(log_softmax) is softmax.
        assertClose(x.logSoftmax().exp(), y, rtol: 1e-4, atol: 1e-6)
    }

    func testKnownValuesAndMaskedEntries() {
        let x = Tensor(shape: [2, 3], [1, 2, 3, 0, -.infinity, 0])
        let y = x.softmax()
        let e1 = Foundation.exp(Float(1)), e2 = Foundation.exp(Float(2)), e3 = Foundation.exp(Float(3))
        assertClose(y, Tensor(shape: [2, 3], [e1 / (e1 + e2 + e3), e2 / (e1 + e2 + e3), e3 / (e1 + e2 + e3), 0.5, 0, 0.5]),
                    rtol: 1e-6)
        XCTAssertEqual(x.logSoftmax()[1, 1], -.infinity)
        // An all -inf row is NaN, as in PyTorch.
        XCTAssert(Tensor(shape: [1, 2], [-.infinity, -.infinity]).softmax().scalars.allSatisfy(\.isNaN))
        // A 0-d tensor gives 1.
        XCTAssertEqual(Tensor(4).softmax().item, 1)
    }

    func testGradientsMatchFiniteDifferences() {
        for (shape, axis) in [([2, 3, 4], -1), ([2, 3, 4], 1), ([3, 2], 0), ([1, 5], -1)] {
            let x = randomTensor(shape, seed: 7)
            checkGradients([x]) { $0[0].softmax(axis: axis) }
            checkGradients([x]) { $0[0].logSoftmax(axis: axis) }
        }
    }

    func testBackwardMatchesReference() {
        for (i, (shape, axis)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(40 + i), scale: 2)
            assertSameValueAndGradients([x], rtol: 1e-4, atol: 1e-5, "softmax \(shape) axis \(axis)",
                                        fast: { $0[0].softmax(axis: axis) },
                                        reference: { Reference.softmax($0[0], axis: axis) })
            assertSameValueAndGradients([x], rtol: 1e-4, atol: 1e-5, "logSoftmax \(shape) axis \(axis)",
                                        fast: { $0[0].logSoftmax(axis: axis) },
                                        reference: { Reference.logSoftmax($0[0], axis: axis) })
        }
    }

    func testIdenticalForOneAndTwoThreads() {
        let a = randomTensor([64, 1000], seed: 5), b = randomTensor([8, 300, 40], seed: 6)
        assertSameForThreadCounts("softmax") {
            valueAndGradients([a]) { $0[0].softmax() } + valueAndGradients([b]) { $0[0].softmax(axis: 1) }
        }
        assertSameForThreadCounts("logSoftmax") {
            valueAndGradients([a]) { $0[0].logSoftmax() } + valueAndGradients([b]) { $0[0].logSoftmax(axis: 1) }
        }
    }
}
