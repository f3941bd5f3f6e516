import XCTest
import TensorEngine

final class ReductionAndShapeTests: XCTestCase {
    func testReductionValues() {
        let x = Tensor(shape: [2, 3], [1, 5, 3, 4, 2, 6])
        XCTAssertEqual(x.sum().item, 21)
        XCTAssertEqual(x.sum(axes: [0]).scalars, [5, 7, 9])
        XCTAssertEqual(x.sum(axes: [1], keepDims: true).shape, [2, 1])
        XCTAssertEqual(x.mean(axes: [-1]).scalars, [3, 4])
        XCTAssertEqual(x.max(axes: [1]).scalars, [5, 6])
        XCTAssertEqual(x.min(axes: [0]).scalars, [1, 2, 3])
        XCTAssertEqual(x.argmax(axis: 1).scalars, [1, 2])
        XCTAssertEqual(x.argmin(axis: 0).scalars, [0, 1, 0])
        XCTAssertEqual(x.variance(axes: [1]).scalars, [4, 4])
        XCTAssertEqual(x.variance(axes: [1], correction: 0).scalars[0], 8.0 / 3.0, accuracy: 1e-6)
        XCTAssertEqual(x.logSumExp(axes: [1]).scalars[0], Float(log(exp(1.0) + exp(5.0) + exp(3.0))), accuracy: 1e-5)
        // Huge values stay finite.
        XCTAssertEqual(Tensor(shape: [2], [1000, 1000]).logSumExp(axes: [0]).item, 1000 + Float(log(2.0)), accuracy: 1e-3)
    }

    func testNonContiguousAxesMatchSequentialReduction() {
        let x = randomTensor([3, 4, 5, 6], seed: 8)
        assertClose(x.sum(axes: [0, 2]), x.sum(axes: [2]).sum(axes: [0]), rtol: 1e-5, atol: 1e-5)
        assertClose(x.max(axes: [1, 3], keepDims: true), x.max(axes: [3], keepDims: true).max(axes: [1], keepDims: true))
        assertClose(x.mean(axes: [0, 3]), x.mean(axes: [3]).mean(axes: [0]), rtol: 1e-5, atol: 1e-6)
    }

    func testReductionGradients() {
        let x = randomTensor([3, 4, 5], seed: 9)
        checkGradients([x]) { $0[0].sum(axes: [1]) }
        checkGradients([x]) { $0[0].sum(axes: [0, 2], keepDims: true) }
        checkGradients([x]) { $0[0].mean() }
        checkGradients([x]) { $0[0].variance(axes: [2]) }
        checkGradients([x]) { $0[0].variance(axes: [0, 1], correction: 0) }
        checkGradients([x]) { $0[0].max(axes: [1]) }
        checkGradients([x]) { $0[0].min(axes: [0, 2]) }
        checkGradients([x]) { $0[0].logSumExp(axes: [2]) }
    }

    func testShapeOpValues() {
        let x = Tensor(shape: [2, 3], [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(x.transposed().scalars, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(x.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(x.sliced(axis: 1, 1..<3).scalars, [1, 2, 4, 5])
        XCTAssertEqual(x.padded(axis: 0, before: 1, after: 0, value: -1).scalars, [-1, -1, -1, 0, 1, 2, 3, 4, 5])
        XCTAssertEqual(Tensor.concat([x, x], axis: 1).scalars, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        XCTAssertEqual(Tensor.stack([x, x], axis: 1).shape, [2, 2, 3])
        let parts = x.split(sizes: [1, 2], axis: 1)
        XCTAssertEqual(parts[1].scalars, [1, 2, 4, 5])
        XCTAssertEqual(x.expanded(to: [2, 2, 3]).scalars, x.scalars + x.scalars)
        let y = randomTensor([2, 3, 4, 5], seed: 3)
        let p = y.permuted([2, 0, 3, 1])
        XCTAssertEqual(p.shape, [4, 2, 5, 3])
        XCTAssertEqual(p[3, 1, 4, 2], y[1, 2, 3, 4])
        XCTAssertEqual(y.unsqueezed(1).shape, [2, 1, 3, 4, 5])
        XCTAssertEqual(y.flattened(from: 1).shape, [2, 60])
    }

    func testShapeOpGradients() {
        let x = randomTensor([2, 3, 4], seed: 10)
        checkGradients([x]) { $0[0].permuted([2, 0, 1]) }
        checkGradients([x]) { $0[0].transposed(0, 2) }
        checkGradients([x]) { $0[0].reshaped([4, 6]) }
        checkGradients([x]) { $0[0].sliced(axis: 2, 1..<3) }
        checkGradients([x]) { $0[0].padded([(0, 0), (1, 2), (0, 1)]) }
        checkGradients([x]) { $0[0].expanded(to: [3, 2, 3, 4]) }
        let y = randomTensor([2, 5, 4], seed: 11)
        checkGradients([x, y]) { Tensor.concat([$0[0], $0[1]], axis: 1) }
        checkGradients([x, x.copy()]) { Tensor.stack([$0[0], $0[1]], axis: 3) }
        checkGradients([y]) { let p = $0[0].split(sizes: [2, 3], axis: 1); return p[1] * 2 + p[0].sum() }
    }
}
