import XCTest
import TensorEngine

final class AutogradSmokeTests: XCTestCase {
    func testBackwardOfSquareSum() {
        let w = Tensor(shape: [3], [1, 2, 3], requiresGrad: true)
        let loss = (w * w).sum()
        XCTAssertEqual(loss.item, 14)
        loss.backward()
        XCTAssertEqual(w.grad!.scalars, [2, 4, 6])
    }

    func testGradientCheckHarnessOnBroadcastMul() {
        let a = randomTensor([2, 3, 4], seed: 1), b = randomTensor([3, 1], seed: 2)
        checkGradients([a, b]) { $0[0] * $0[1] }
    }
}
