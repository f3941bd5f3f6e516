import XCTest
import TensorEngine

final class EmbeddingTests: XCTestCase {
    func ids(_ shape: [Int], vocabulary: Int, seed: UInt64) -> Tensor {
        var rng = TestRandom(seed)
        return Tensor(shape: shape, (0..<Tensor.elementCount(shape)).map { _ in Float(rng.int(vocabulary)) })
    }

    func testMatchesReferenceInValueAndGradient() {
        for (i, (shape, v, d)) in [([2, 3], 10, 4), ([5], 3, 7), ([1, 77], 49, 33), ([], 4, 5), ([2, 2, 2], 1, 3)].enumerated() {
            let idx = ids(shape, vocabulary: v, seed: UInt64(i)), w = randomTensor([v, d], seed: UInt64(50 + i))
            let y = Tensor.embedding(indices: idx, weight: w)
            XCTAssertEqual(y.shape, shape + [d])
            assertClose(y, Reference.embedding(indices: idx, weight: w), rtol: 0, atol: 0, "case \(i)")
            assertSameValueAndGradients([w], rtol: 1e-5, atol: 1e-6, "case \(i)",
                                        fast: { Tensor.embedding(indices: idx, weight: $0[0]) },
                                        reference: { Reference.embedding(indices: idx, weight: $0[0]) })
        }
    }

    func testRepeatedIdsAccumulateAndGradientsMatchFiniteDifferences() {
        let idx = Tensor(shape: [2, 3], [1, 1, 0, 3, 1, 0])
        let w = randomTensor([4, 2], seed: 3)
        let (_, grads) = valueAndGradient(at: [w]) { Tensor.embedding(indices: idx, weight: $0[0]).sum() }
        XCTAssertEqual(grads[0].scalars, [2, 2, 3, 3, 0, 0, 1, 1])
        checkGradients([w]) { Tensor.embedding(indices: idx, weight: $0[0]) }
        // The indices are not differentiable: they get no gradient.
        let (_, both) = valueAndGradient(at: [idx, w]) { Tensor.embedding(indices: $0[0], weight: $0[1]).sum() }
        XCTAssertEqual(both[0].scalars, [Float](repeating: 0, count: 6))
    }

    func testIdenticalForOneAndTwoThreads() {
        let idx = ids([8, 77], vocabulary: 1000, seed: 7), w = randomTensor([1000, 768], seed: 8)
        assertSameForThreadCounts("embedding") {
            valueAndGradients([w]) { Tensor.embedding(indices: idx, weight: $0[0]) }
        }
    }
}
