import XCTest
import TensorEngine

final class MatMulTests: XCTestCase {
    func testMatmulMatchesReferenceOnAssortedShapes() {
        let cases: [([Int], [Int])] = [([1, 1], [1, 1]), ([3, 5], [5, 7]), ([17, 33], [33, 9]), ([4, 3, 5], [5, 2]),
                                       ([2, 3, 4, 6], [3, 6, 5]), ([1, 7, 3], [4, 3, 2]), ([2, 1, 5, 3], [1, 4, 3, 6]),
                                       ([65, 129], [129, 31])]
        for (i, (sa, sb)) in cases.enumerated() {
            let a = randomTensor(sa, seed: UInt64(i)), b = randomTensor(sb, seed: UInt64(100 + i))
            assertClose(a.matmul(b), Reference.matmul(a, b), rtol: 1e-4, atol: 1e-4, "\(sa) x \(sb)")
        }
    }

    func testMatmulGradients() {
        let a = randomTensor([2, 3, 4], seed: 1), b = randomTensor([4, 5], seed: 2)
        checkGradients([a, b]) { $0[0].matmul($0[1]) }
        let c = randomTensor([3, 1, 2, 4], seed: 3), d = randomTensor([2, 4, 3], seed: 4)
        checkGradients([c, d]) { $0[0].matmul($0[1]) }
    }

    func testLinearMatchesMatmulAndHasGradients() {
        let x = randomTensor([2, 3, 6], seed: 5), w = randomTensor([4, 6], seed: 6), b = randomTensor([4], seed: 7)
        assertClose(x.linear(weight: w, bias: b), x.matmul(w.transposed()) + b, rtol: 1e-5, atol: 1e-5)
        checkGradients([x, w, b]) { $0[0].linear(weight: $0[1], bias: $0[2]) }
        checkGradients([x, w]) { $0[0].linear(weight: $0[1]) }
    }

    func testBatchedMatmulIdenticalAcrossThreadCounts() {
        let saved = Engine.threads
        defer { Engine.threads = saved }
        let a = randomTensor([8, 33, 40], seed: 1), b = randomTensor([8, 40, 21], seed: 2)
        Engine.threads = 1
        let one = a.matmul(b).scalars
        Engine.threads = 2
        XCTAssertEqual(a.matmul(b).scalars, one)
    }
}
