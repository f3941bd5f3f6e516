import XCTest
@testable import TensorEngine

final class SmokeTests: XCTestCase {
    func testBackwardOfSquareSum() {
        let w = Tensor(shape: [3], [1, 2, 3], requiresGrad: true)
        let loss = (w * w).sum()
        XCTAssertEqual(loss.item, 14)
        loss.backward()
        XCTAssertEqual(w.grad!.scalars, [2, 4, 6])
    }
}
