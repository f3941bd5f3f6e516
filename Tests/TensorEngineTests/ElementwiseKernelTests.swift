@testable import TensorEngine
import XCTest

/// The fast kernels against their plain references: the op-type elementwise kernels against the
/// closure kernels (bit for bit, broadcasting included), and `maxFloat` against a scalar loop.
final class ElementwiseKernelTests: XCTestCase {
    /// Random values with infinities, NaN, signed zeros and subnormals mixed in.
    func values(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = RandomGenerator(seed: seed)
        let t = Tensor.randn(shape, std: 3, generator: &g)
        let specials: [Float] = [.infinity, -.infinity, .nan, 0, -0.0, 1e-40, -1e-40, .greatestFiniteMagnitude]
        for (k, v) in specials.enumerated() where k * 7 < t.count { t.pointer[k * 7] = v }
        return t
    }

    func assertBitwiseEqual(_ a: Tensor, _ b: Tensor, _ message: String) {
        XCTAssertEqual(a.shape, b.shape, message)
        XCTAssertEqual((0..<a.count).map { a.pointer[$0].bitPattern }, (0..<b.count).map { b.pointer[$0].bitPattern }, message)
    }

    func testOpKernelsEqualClosureKernelsBitForBit() {
        let pairs: [([Int], [Int])] = [
            ([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([2, 3, 4, 5], [5]), ([3, 1, 5], [3, 4, 1]),
            ([1], [6, 70]), ([256, 64, 14, 14], [256, 64, 1, 1]), ([40000], [40000]),
        ]
        for (k, (sa, sb)) in pairs.enumerated() {
            let a = values(sa, seed: UInt64(2 * k)), b = values(sb, seed: UInt64(2 * k + 1))
            let label = "\(sa) with \(sb)"
            assertBitwiseEqual(broadcastKernel(a, b, op: "add", AddKernelOp()), broadcastKernel(a, b, op: "add") { $0 + $1 }, "add \(label)")
            assertBitwiseEqual(broadcastKernel(a, b, op: "sub", SubKernelOp()), broadcastKernel(a, b, op: "sub") { $0 - $1 }, "sub \(label)")
            assertBitwiseEqual(broadcastKernel(a, b, op: "mul", MulKernelOp()), broadcastKernel(a, b, op: "mul") { $0 * $1 }, "mul \(label)")
            assertBitwiseEqual(broadcastKernel(a, b, op: "div", DivKernelOp()), broadcastKernel(a, b, op: "div") { $0 / $1 }, "div \(label)")
            // The public operators use the op kernels.
            assertBitwiseEqual(a + b, broadcastKernel(a, b, op: "add") { $0 + $1 }, "+ \(label)")
        }
    }

    func testMaxFloatEqualsScalarLoop() {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 196, 1000] {
            var g = RandomGenerator(seed: UInt64(n))
            let t = Tensor.randn([Swift.max(n, 1)], generator: &g)
            if n > 3 { t.pointer[n - 1] = 50; t.pointer[n / 2] = -0.0 }
            var expected = -Float.infinity
            for i in 0..<n where t.pointer[i] > expected { expected = t.pointer[i] }
            XCTAssertEqual(maxFloat(t.pointer, n), expected, "n = \(n)")
        }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        defer { p.deallocate() }
        for i in 0..<16 { p[i] = -Float.infinity }
        p[11] = -3
        XCTAssertEqual(maxFloat(p, 16), -3)
    }
}
