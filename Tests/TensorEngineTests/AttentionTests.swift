import XCTest
import TensorEngine

final class AttentionTests: XCTestCase {
    struct Case {
        var lead: [Int], l: Int, s: Int, d: Int, dv: Int
        var causal = false
        var maskShape: [Int]? = nil
        var scale: Float? = nil
    }

    /// Odd sizes, batch 1, rank 3 and 4, several query blocks (L > 64), causal with L < S and
    /// L > S, masks of several broadcast shapes, explicit scales.
    let cases: [Case] = [
        Case(lead: [2, 3], l: 5, s: 7, d: 8, dv: 6),
        Case(lead: [1, 1], l: 1, s: 4, d: 3, dv: 2),
        Case(lead: [2, 3], l: 5, s: 7, d: 8, dv: 6, causal: true),
        Case(lead: [2, 2], l: 9, s: 4, d: 5, dv: 3, causal: true),
        Case(lead: [1, 2], l: 130, s: 70, d: 16, dv: 12),
        Case(lead: [1, 2], l: 130, s: 150, d: 16, dv: 12, causal: true, scale: 0.3),
        Case(lead: [3], l: 6, s: 6, d: 4, dv: 4, causal: true, maskShape: [6, 6]),
        Case(lead: [2, 3], l: 5, s: 7, d: 8, dv: 6, maskShape: [2, 1, 1, 7]),
        Case(lead: [2, 3], l: 5, s: 7, d: 8, dv: 6, maskShape: [3, 5, 1], scale: 2),
        Case(lead: [2, 2], l: 70, s: 33, d: 9, dv: 5, maskShape: [2, 2, 70, 33]),
        Case(lead: [1, 8], l: 77, s: 77, d: 64, dv: 64, causal: true),
    ]

    func inputs(_ c: Case, seed: UInt64) -> [Tensor] {
        var xs = [randomTensor(c.lead + [c.l, c.d], seed: seed), randomTensor(c.lead + [c.s, c.d], seed: seed + 1),
                  randomTensor(c.lead + [c.s, c.dv], seed: seed + 2)]
        if let m = c.maskShape { xs.append(randomTensor(m, seed: seed + 3)) }
        return xs
    }

    func fast(_ c: Case) -> ([Tensor]) -> Tensor {
        { xs in Tensor.scaledDotProductAttention(query: xs[0], key: xs[1], value: xs[2], attentionMask: xs.count > 3 ? xs[3] : nil,
                                                 causal: c.causal, scale: c.scale) }
    }

    func reference(_ c: Case) -> ([Tensor]) -> Tensor {
        { xs in Reference.scaledDotProductAttention(query: xs[0], key: xs[1], value: xs[2],
                                                       attentionMask: xs.count > 3 ? xs[3] : nil,
                                                       causal: c.causal, scale: c.scale) }
    }

    func testMatchesReferenceInValueAndGradients() {
        for (i, c) in cases.enumerated() {
            let xs = inputs(c, seed: UInt64(10 * i))
            assertClose(fast(c)(xs), reference(c)(xs), rtol: 1e-4, atol: 1e-5, "case \(i)")
            assertSameValueAndGradients(xs, rtol: 1e-3, atol: 1e-5, "case \(i)", fast: fast(c), reference: reference(c))
        }
    }

    func testGradientsMatchFiniteDifferences() {
        let small = [
            Case(lead: [1, 2], l: 3, s: 4, d: 3, dv: 2),
            Case(lead: [2, 1], l: 3, s: 3, d: 2, dv: 3, causal: true),
            Case(lead: [1, 2], l: 4, s: 2, d: 2, dv: 2, causal: true, maskShape: [4, 2], scale: 0.7),
            Case(lead: [2], l: 2, s: 3, d: 2, dv: 2, maskShape: [2, 1, 3]),
        ]
        for (i, c) in small.enumerated() {
            checkGradients(inputs(c, seed: UInt64(100 + 10 * i)), fast(c))
        }
    }

    func testBlockedPositionsAndFullyMaskedRows() {
        // A -inf mask entry removes that key: same as attending over the other keys only.
        let q = randomTensor([1, 1, 2, 4], seed: 1), k = randomTensor([1, 1, 3, 4], seed: 2), v = randomTensor([1, 1, 3, 5], seed: 3)
        let mask = Tensor(shape: [1, 3], [0, -.infinity, 0])
        let masked = Tensor.scaledDotProductAttention(query: q, key: k, value: v, attentionMask: mask)
        let dropped = Tensor.scaledDotProductAttention(query: q, key: Tensor.concat([k.sliced(axis: 2, 0..<1), k.sliced(axis: 2, 2..<3)], axis: 2),
                                                       value: Tensor.concat([v.sliced(axis: 2, 0..<1), v.sliced(axis: 2, 2..<3)], axis: 2))
        assertClose(masked, dropped, rtol: 1e-5, atol: 1e-6)
        // A row with every key blocked gives zeros (and zero gradients), not NaN.
        let allBlocked = Tensor(shape: [2, 3], [0, 0, 0, -.infinity, -.infinity, -.infinity])
        let grads = valueAndGradients([q, k, v]) { xs in
            Tensor.scaledDotProductAttention(query: xs[0], key: xs[1], value: xs[2], attentionMask: allBlocked)
        }
        XCTAssertEqual(Array(grads[0].scalars[5..<10]), [0, 0, 0, 0, 0])
        XCTAssert(grads.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
        // Causal with one query and one key is the value itself.
        let one = Tensor.scaledDotProductAttention(query: q.sliced(axis: 2, 0..<1), key: k.sliced(axis: 2, 0..<1),
                                                   value: v.sliced(axis: 2, 0..<1), causal: true)
        assertClose(one, v.sliced(axis: 2, 0..<1), rtol: 1e-6)
    }

    func testIdenticalForOneAndTwoThreads() {
        let c = Case(lead: [2, 4], l: 200, s: 90, d: 32, dv: 24, causal: true, maskShape: [200, 90])
        let xs = inputs(c, seed: 1234)
        assertSameForThreadCounts("attention") { valueAndGradients(xs, fast(c)) }
        let c1 = Case(lead: [1, 1], l: 300, s: 300, d: 40, dv: 40)
        let xs1 = inputs(c1, seed: 4321)
        assertSameForThreadCounts("attention batch 1") { valueAndGradients(xs1, fast(c1)) }
    }
}
