import Foundation
import XCTest
import TensorEngine

/// A slow, literal transcription of Philox4x32-R from Random123 (philox.h): arrays, an explicit
/// key schedule, and mulhilo through full-width multiplication. Used to cross-check the fast one.
private func referencePhilox(counter: [UInt32], key: [UInt32], rounds: Int = 10) -> [UInt32] {
    let m0: UInt32 = 0xD2511F53, m1: UInt32 = 0xCD9E8D57
    let w0: UInt32 = 0x9E3779B9, w1: UInt32 = 0xBB67AE85
    var keys: [[UInt32]] = [key]
    for r in 1..<rounds { keys.append([key[0] &+ UInt32(r) &* w0, key[1] &+ UInt32(r) &* w1]) }
    var ctr = counter
    for r in 0..<rounds {
        let (hi0, lo0) = m0.multipliedFullWidth(by: ctr[0])
        let (hi1, lo1) = m1.multipliedFullWidth(by: ctr[2])
        ctr = [hi1 ^ ctr[1] ^ keys[r][0], lo1, hi0 ^ ctr[3] ^ keys[r][1], lo0]
    }
    return ctr
}

private func withThreads<R>(_ n: Int, _ body: () -> R) -> R {
    let saved = Engine.threads
    Engine.threads = n
    defer { Engine.threads = saved }
    return body()
}

final class RandomTests: XCTestCase {
    // MARK: Philox

    func testPhiloxKnownAnswerVectors() {
        // Random123 kat_vectors, philox4x32 10 (also reproduced by an independent Python transcription).
        let cases: [(ctr: SIMD4<UInt32>, key: SIMD2<UInt32>, out: SIMD4<UInt32>)] = [
            (SIMD4(0, 0, 0, 0), SIMD2(0, 0), SIMD4(0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
            (SIMD4(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), SIMD2(0xffffffff, 0xffffffff),
             SIMD4(0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
            (SIMD4(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), SIMD2(0xa4093822, 0x299f31d0),
             SIMD4(0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
        ]
        for c in cases {
            XCTAssertEqual(Philox4x32(key: c.key).block(counter: c.ctr), c.out)
            XCTAssertEqual(referencePhilox(counter: [c.ctr[0], c.ctr[1], c.ctr[2], c.ctr[3]], key: [c.key[0], c.key[1]]),
                           [c.out[0], c.out[1], c.out[2], c.out[3]])
        }
    }

    func testPhiloxMatchesReferenceOnRandomInputs() {
        var t = TestRandom(42)
        for _ in 0..<2000 {
            let c = (0..<4).map { _ in UInt32(truncatingIfNeeded: t.next()) }
            let k = (0..<2).map { _ in UInt32(truncatingIfNeeded: t.next()) }
            let fast = Philox4x32(key: SIMD2(k[0], k[1])).block(counter: SIMD4(c[0], c[1], c[2], c[3]))
            XCTAssertEqual([fast[0], fast[1], fast[2], fast[3]], referencePhilox(counter: c, key: k))
        }
    }

    func testSeedStreamAndOffsetLayout() {
        let seed: UInt64 = 0x0123_4567_89AB_CDEF
        let p = Philox4x32(seed: seed)
        XCTAssertEqual(p.key, SIMD2(0x89AB_CDEF, 0x0123_4567))
        XCTAssertEqual(p.block(offset: 0x1_0000_0002, stream: 0x3_0000_0004), p.block(counter: SIMD4(2, 1, 4, 3)))
        var g = RandomGenerator(seed: seed, stream: 9, offset: 5)
        XCTAssertEqual(g.nextBlock(), p.block(offset: 5, stream: 9))
        XCTAssertEqual(g.offset, 6)
        let b = p.block(offset: 6, stream: 9)
        XCTAssertEqual(g.nextUInt64(), UInt64(b[0]) | UInt64(b[1]) << 32)
    }

    // MARK: Determinism and counter accounting

    func testSameSeedSameNumbersAndDifferentSeedsOrStreamsDiffer() {
        var a = RandomGenerator(seed: 7), b = RandomGenerator(seed: 7)
        XCTAssertEqual(Tensor.randn([1000], generator: &a).scalars, Tensor.randn([1000], generator: &b).scalars)
        XCTAssertEqual(a, b)

        var c = RandomGenerator(seed: 8), d = RandomGenerator(seed: 7, stream: 1)
        let x = Tensor.randn([1000], generator: &c).scalars, y = Tensor.randn([1000], generator: &d).scalars
        var a2 = RandomGenerator(seed: 7)
        let z = Tensor.randn([1000], generator: &a2).scalars
        XCTAssertNotEqual(x, z)
        XCTAssertNotEqual(y, z)
        XCTAssertLessThan(zip(x, z).filter { $0 == $1 }.count, 5)
        XCTAssertLessThan(zip(y, z).filter { $0 == $1 }.count, 5)
    }

    func testStreamsAreUncorrelated() {
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3, stream: 1)
        var c = RandomGenerator(seed: 3).derived(1)
        let x = a.normals(count: 200_000), y = b.normals(count: 200_000), z = c.normals(count: 200_000)
        func corr(_ u: [Float], _ v: [Float]) -> Double {
            var s = 0.0
            for i in 0..<u.count { s += Double(u[i]) * Double(v[i]) }
            return s / Double(u.count)
        }
        // Standard error 1/sqrt(2e5) = 0.0022.
        XCTAssertLessThan(Swift.abs(corr(x, y)), 0.012)
        XCTAssertLessThan(Swift.abs(corr(x, z)), 0.012)
        XCTAssertLessThan(Swift.abs(corr(y, z)), 0.012)
    }

    func testDerivedStreams() {
        var g = RandomGenerator(seed: 11)
        let d1 = g.derived(1), d2 = g.derived(2)
        XCTAssertNotEqual(d1.stream, d2.stream)
        XCTAssertNotEqual(d1.stream, g.stream)
        XCTAssertEqual(d1.seed, g.seed)
        XCTAssertEqual(d1.offset, 0)
        _ = g.normals(count: 10)
        XCTAssertEqual(g.derived(1), d1, "derivation must not depend on the parent's offset")
        XCTAssertNotEqual(d1.derived(2).stream, d2.derived(1).stream)
        XCTAssertNotEqual(RandomGenerator(seed: 11, stream: 5).derived(1).stream, d1.stream)
        var e1 = d1, e2 = d2
        XCTAssertNotEqual(e1.uniforms(count: 16), e2.uniforms(count: 16))
    }

    func testCountersAdvanceAsDocumented() {
        var g = RandomGenerator(seed: 1)
        _ = Tensor.randn([10], generator: &g); XCTAssertEqual(g.offset, 3)
        _ = Tensor.rand([5], generator: &g); XCTAssertEqual(g.offset, 5)
        _ = Tensor.uniform([4], low: -1, high: 1, generator: &g); XCTAssertEqual(g.offset, 6)
        _ = Tensor.randint([5], upperBound: 10, generator: &g); XCTAssertEqual(g.offset, 9)
        _ = Tensor.randn([0], generator: &g); XCTAssertEqual(g.offset, 9)
        _ = g.nextFloat(); _ = g.nextNormal(); _ = g.nextInt(upperBound: 3); _ = g.nextUInt32()
        XCTAssertEqual(g.offset, 13)
        _ = g.permutation(7); XCTAssertEqual(g.offset, 16)
        _ = g.permutation(1); XCTAssertEqual(g.offset, 16)
        _ = Tensor.ones([9]).dropout(probability: 0.5, generator: &g); XCTAssertEqual(g.offset, 19)
        _ = Tensor.ones([9]).dropout(probability: 0, generator: &g); XCTAssertEqual(g.offset, 19)
        _ = Tensor.ones([9]).dropout(probability: 1, generator: &g); XCTAssertEqual(g.offset, 19)
    }

    func testConsecutiveDrawsDifferAndBlockAlignedDrawsConcatenate() {
        var g = RandomGenerator(seed: 5)
        let a = Tensor.randn([8], generator: &g).scalars, b = Tensor.randn([4], generator: &g).scalars
        XCTAssertNotEqual(a, Array(b + b))
        var h = RandomGenerator(seed: 5)
        XCTAssertEqual(Tensor.randn([12], generator: &h).scalars, a + b)
        // A 6-element draw wastes half a block: the next draw starts at block 2.
        var u = RandomGenerator(seed: 5)
        _ = u.uniforms(count: 6)
        var v = RandomGenerator(seed: 5)
        let all = v.uniforms(count: 12)
        XCTAssertEqual(u.uniforms(count: 4), Array(all[8..<12]))
    }

    func testScalarDrawsAreElementZeroOfBulkDraws() {
        let g0 = RandomGenerator(seed: 99, stream: 4, offset: 17)
        var g = g0, h = g0
        XCTAssertEqual(g.nextFloat(), h.uniforms(count: 1)[0])
        XCTAssertEqual(g.nextNormal(), h.normals(count: 1)[0])
        XCTAssertEqual(g.nextFloat(low: -3, high: 5), h.uniforms(count: 3, low: -3, high: 5)[0])
        XCTAssertEqual(g.nextInt(upperBound: 1000), h.integers(count: 1, upperBound: 1000)[0])
        XCTAssertEqual(g, h)
        // The documented conversions.
        var k = g0
        let b = k.nextBlock()
        var m = g0
        XCTAssertEqual(m.uniforms(count: 4), [b[0], b[1], b[2], b[3]].map { RandomGenerator.unitFloat($0) })
        let p0 = RandomGenerator.normalPair(b[0], b[1]), p1 = RandomGenerator.normalPair(b[2], b[3])
        var n = g0
        XCTAssertEqual(n.normals(count: 4), [p0.0, p0.1, p1.0, p1.1])
    }

    func testResultsIndependentOfThreadCount() {
        let n = 300_001  // several parallel chunks and a partial last block
        func draw() -> [[Float]] {
            var g = RandomGenerator(seed: 2024, stream: 3)
            let x = randomTensor([n], seed: 1, requiresGrad: true)
            let y = x.dropout(probability: 0.3, generator: &g)
            y.backward(Tensor.ones([n]))
            return [Tensor.randn([n], generator: &g).scalars,
                    Tensor.randn([n], mean: 2, std: 3, generator: &g).scalars,
                    Tensor.rand([n], generator: &g).scalars,
                    Tensor.uniform([n], low: -2, high: 7, generator: &g).scalars,
                    Tensor.randint([n], upperBound: 1000, generator: &g).scalars,
                    g.integers(count: n, upperBound: Int.max).map { Float($0) },
                    y.scalars, x.grad!.scalars,
                    [Float(g.offset)]]
        }
        let one = withThreads(1, draw), two = withThreads(2, draw), four = withThreads(4, draw)
        XCTAssertEqual(one.count, two.count)
        for i in 0..<one.count {
            XCTAssertEqual(one[i], two[i], "draw \(i) differs between 1 and 2 threads")
            XCTAssertEqual(one[i], four[i], "draw \(i) differs between 1 and 4 threads")
        }
    }

    // MARK: Distributions

    func testNormalMoments() {
        var g = RandomGenerator(seed: 12345)
        let n = 1_000_000
        let x = Tensor.randn([n], generator: &g).scalars
        var s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, within1 = 0, maxAbs: Float = 0
        for v in x {
            let d = Double(v)
            s1 += d; s2 += d * d; s3 += d * d * d; s4 += d * d * d * d
            if Swift.abs(v) < 1 { within1 += 1 }
            maxAbs = Swift.max(maxAbs, Swift.abs(v))
        }
        XCTAssert(x.allSatisfy { $0.isFinite })
        let mean = s1 / Double(n), variance = s2 / Double(n) - mean * mean
        // Standard errors: mean 0.001, variance 0.0014, skewness 0.0024, kurtosis 0.0049, P(|z|<1) 0.00047.
        XCTAssertLessThan(Swift.abs(mean), 0.006)
        XCTAssertLessThan(Swift.abs(variance - 1), 0.008)
        XCTAssertLessThan(Swift.abs(s3 / Double(n)), 0.015)
        XCTAssertLessThan(Swift.abs(s4 / Double(n) - 3), 0.03)
        XCTAssertLessThan(Swift.abs(Double(within1) / Double(n) - 0.682689), 0.003)
        XCTAssertGreaterThan(maxAbs, 4.0)
        XCTAssertLessThan(maxAbs, 7.0)

        var h = RandomGenerator(seed: 1)
        let y = Tensor.randn([200_000], mean: 5, std: 0.5, generator: &h).scalars
        let m = y.reduce(0.0) { $0 + Double($1) } / Double(y.count)
        let v = y.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(y.count)
        XCTAssertEqual(m, 5, accuracy: 0.01)
        XCTAssertEqual(v, 0.25, accuracy: 0.01)
    }

    func testUniformRange() {
        XCTAssertEqual(RandomGenerator.unitFloat(0xFFFF_FFFF), 1 - 0x1p-24)
        XCTAssertEqual(RandomGenerator.unitFloat(0), 0)
        XCTAssertLessThan(RandomGenerator.uniformFloat(0xFFFF_FFFF, low: 1, high: 2), 2)  // 1 + (1 - 2^-24) rounds to 2
        XCTAssertLessThan(RandomGenerator.uniformFloat(0xFFFF_FFFF, low: -1, high: 1e-9), 1e-9)
        XCTAssertEqual(RandomGenerator.uniformFloat(0, low: -1, high: 1), -1)
        let (r0, _) = RandomGenerator.normalPair(0, 0)
        XCTAssert(r0.isFinite)

        var g = RandomGenerator(seed: 77)
        let n = 1_000_000
        let u = Tensor.rand([n], generator: &g).scalars
        var s = 0.0, s2 = 0.0
        var buckets = [Int](repeating: 0, count: 16)
        XCTAssert(u.allSatisfy { $0 >= 0 && $0 < 1 })
        for v in u {
            s += Double(v); s2 += Double(v) * Double(v)
            buckets[Int(v * 16)] += 1
        }
        XCTAssertEqual(s / Double(n), 0.5, accuracy: 0.002)
        XCTAssertEqual(s2 / Double(n) - (s / Double(n)) * (s / Double(n)), 1.0 / 12, accuracy: 0.001)
        XCTAssertLessThan(chiSquare(buckets), 45)  // 15 degrees of freedom; p ~ 1e-4

        let w = Tensor.uniform([100_000], low: 1, high: 2, generator: &g).scalars
        XCTAssert(w.allSatisfy { $0 >= 1 && $0 < 2 })
        XCTAssertEqual(w.reduce(0.0) { $0 + Double($1) } / Double(w.count), 1.5, accuracy: 0.005)
    }

    func testRandintInRangeAndUnbiased() {
        var g = RandomGenerator(seed: 31337)
        for bound in [1, 3, 10, 7919] {
            let n = bound == 7919 ? 2_000_000 : 600_000
            let x = Tensor.randint([n], upperBound: bound, generator: &g).scalars
            var counts = [Int](repeating: 0, count: bound)
            XCTAssert(x.allSatisfy { $0 >= 0 && $0 < Float(bound) && $0 == $0.rounded() }, "bound \(bound)")
            for v in x { counts[Int(v)] += 1 }
            if bound > 1 {
                // Chi-square with bound - 1 degrees of freedom: mean k, sd sqrt(2k); allow 6 sd.
                let dof = Double(bound - 1)
                XCTAssertLessThan(chiSquare(counts), dof + 6 * (2 * dof).squareRoot() + 10, "bound \(bound)")
            }
        }
        // Large bounds hit the rejection path (bound 3 * 2^61: about 1 in 4 candidates is rejected).
        // Modulo reduction would give P(x < 2^62) = 0.75; the right answer is 2/3.
        let big = 3 << 61
        let xs = g.integers(count: 200_000, upperBound: big)
        XCTAssert(xs.allSatisfy { $0 >= 0 && $0 < big })
        let frac = Double(xs.filter { $0 < 1 << 62 }.count) / Double(xs.count)
        XCTAssertEqual(frac, 2.0 / 3.0, accuracy: 0.006)  // standard error 0.001
        var h = RandomGenerator(seed: 4)
        for _ in 0..<1000 {
            let v = h.nextInt(upperBound: Int.max)
            XCTAssert(v >= 0 && v < Int.max)
            XCTAssertEqual(h.nextInt(upperBound: 1), 0)
        }
        var a = RandomGenerator(seed: 6), b = RandomGenerator(seed: 6)
        XCTAssertEqual(a.integers(count: 1001, upperBound: big), b.integers(count: 1001, upperBound: big))
    }

    func testPermutationAndShuffle() {
        var g = RandomGenerator(seed: 8)
        for n in [0, 1, 2, 5, 1000] {
            let p = g.permutation(n)
            XCTAssertEqual(p.sorted(), Array(0..<n))
        }
        // Each position of a 5-permutation holds each value 1/5 of the time.
        let n = 5, trials = 50_000
        var counts = [[Int]](repeating: [Int](repeating: 0, count: n), count: n)
        for _ in 0..<trials {
            for (pos, v) in g.permutation(n).enumerated() { counts[pos][v] += 1 }
        }
        for pos in 0..<n { XCTAssertLessThan(chiSquare(counts[pos]), 25, "position \(pos)") }  // 4 dof
        // All 6 orders of 3 items, equally often.
        var orders: [[Int]: Int] = [:]
        for _ in 0..<60_000 { orders[g.permutation(3), default: 0] += 1 }
        XCTAssertEqual(orders.count, 6)
        XCTAssertLessThan(chiSquare(Array(orders.values)), 25)

        // shuffle(array) with the same generator applies permutation(n).
        let items = ["a", "b", "c", "d", "e", "f", "g"]
        var s1 = RandomGenerator(seed: 21), s2 = s1
        var shuffled = items
        s1.shuffle(&shuffled)
        let perm = s2.permutation(items.count)
        XCTAssertEqual(shuffled, perm.map { items[$0] })
        XCTAssertEqual(s1, s2)
        var slice = Array(0..<10)[2..<8]
        s1.shuffle(&slice)
        XCTAssertEqual(slice.sorted(), Array(2..<8))
    }

    // MARK: Dropout

    func testDropoutGradient() {
        let x = randomTensor([3, 17], seed: 5)
        checkGradients([x]) { xs in
            var g = RandomGenerator(seed: 42)  // same mask on every call
            return xs[0].dropout(probability: 0.4, generator: &g)
        }
        // Two dropouts in one graph use different masks (the generator advances between them).
        checkGradients([x]) { xs in
            var g = RandomGenerator(seed: 43)
            return xs[0].dropout(probability: 0.5, generator: &g) * xs[0].dropout(probability: 0.2, generator: &g)
        }
    }

    func testDropoutMaskRuleAndFraction() {
        let n = 1_000_000, p: Float = 0.3
        let g0 = RandomGenerator(seed: 2, stream: 1)
        var g = g0
        let x = Tensor.ones([n], requiresGrad: true)
        let y = x.dropout(probability: p, generator: &g)
        let values = y.scalars
        let scale = 1 / (1 - p)
        var dropped = 0, sum = 0.0
        for v in values {
            if v == 0 { dropped += 1 }
            sum += Double(v)
        }
        XCTAssert(values.allSatisfy { $0 == 0 || $0 == scale })
        XCTAssertEqual(Double(dropped) / Double(n), Double(p), accuracy: 0.003)  // standard error 0.00046
        XCTAssertEqual(sum / Double(n), 1, accuracy: 0.005)  // inverted dropout keeps the mean
        // The mask is rand < 1 - p for the same generator value.
        var r = g0
        let u = Tensor.rand([n], generator: &r).scalars
        XCTAssertEqual(r, g)
        for i in 0..<n where (u[i] < 1 - p) != (values[i] != 0) {
            XCTFail("element \(i): uniform \(u[i]), dropout \(values[i])"); break
        }
        // Gradient through the same mask.
        y.backward(Tensor.ones([n]) * 2)
        XCTAssertEqual(x.grad!.scalars, values.map { $0 * 2 })
    }

    func testDropoutEdgeProbabilities() {
        var g = RandomGenerator(seed: 3)
        let x = randomTensor([4, 5], seed: 9, requiresGrad: true)
        XCTAssert(x.dropout(probability: 0, generator: &g) === x)
        let z = x.dropout(probability: 1, generator: &g)
        XCTAssertEqual(z.scalars, [Float](repeating: 0, count: 20))
        (z * x).sum().backward()
        XCTAssertEqual(x.grad!.scalars, [Float](repeating: 0, count: 20))
        XCTAssertEqual(g.offset, 0)
        let w = Autograd.noGrad { x.dropout(probability: 0.5, generator: &g) }
        XCTAssertNil(w.gradFunction)
        XCTAssertFalse(w.requiresGrad)
    }
}

/// Pearson's chi-square statistic of `counts` against equal expected frequencies.
private func chiSquare(_ counts: [Int]) -> Double {
    let total = Double(counts.reduce(0, +)), expected = total / Double(counts.count)
    return counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
}
