import XCTest
@testable import TensorEngine

/// The opt-in bfloat16 products (`Engine.setComputeDType(.bfloat16)`, CEngineSupport/bf16_gemm.c)
/// against plain loops on the same rounded operands. Skipped on CPUs without AVX512_BF16.
final class BFloat16Tests: XCTestCase {
    override func setUpWithError() throws {
        if let problem = Engine.bfloat16Problem { throw XCTSkip(problem) }
    }

    override func tearDown() {
        try? Engine.setComputeDType(.float32)
    }

    private func values(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        randomTensor([count], seed: seed, scale: scale).scalars
    }

    func testRoundingIsNearestEvenLikeTheHardware() {
        let one = Float(1)
        var xs: [Float] = [0, -0.0, one, -one, one + 0x1p-8, one + 0x1p-8 + 0x1p-20, one + 3 * 0x1p-8, one + 0x1p-9,
                           .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, -.infinity, 0x1p-130, -0x1p-140,
                           .leastNormalMagnitude, 3.14159265, 1e-30, 65504, 1e38]
        xs += values(4096, seed: 9, scale: 100)
        let hardware = hardwareBFloat16Rounded(xs)
        for (x, h) in zip(xs, hardware) {
            XCTAssertEqual(Reference.bfloat16Rounded(x).bitPattern, h.bitPattern, "bf16(\(x))")
        }
        XCTAssertEqual(Reference.bfloat16Rounded(one + 0x1p-8), one, "a tie goes to the even neighbour")
        XCTAssertEqual(Reference.bfloat16Rounded(one + 3 * 0x1p-8), one + 0x1p-6, "a tie goes to the even neighbour")
        XCTAssertTrue(hardwareBFloat16Rounded([.nan])[0].isNaN)
    }

    func testProductsMatchTheRoundedOperandReference() throws {
        try Engine.setComputeDType(.bfloat16)
        // Odd k, n off the 32-column panels, m off the 6-row tiles, every transpose, alpha and beta.
        let shapes = [(1, 1, 1), (7, 33, 5), (13, 70, 301), (6, 32, 64), (50, 17, 9), (64, 200, 96)]
        for (s, (m, n, k)) in shapes.enumerated() {
            for transA in [false, true] {
                for transB in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (0.7, 0.3)] {
                        let a = values(m * k, seed: UInt64(10 * s + 1)), b = values(k * n, seed: UInt64(10 * s + 2))
                        let c = values(m * n, seed: UInt64(10 * s + 3))
                        let got = sgemmArrays(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c)
                        let want = Reference.bfloat16Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                                             a: a, b: b, beta: beta, c: c)
                        // Float32 sums of k exact products: within k ulps of the magnitude of the terms.
                        var worst: Float = 0
                        for i in 0..<(m * n) {
                            let bound = Float(k + 2) * 0x1p-23 * (Swift.abs(want[i]) + Float(k).squareRoot() + Swift.abs(beta * c[i]))
                            worst = Swift.max(worst, Swift.abs(got[i] - want[i]) / bound)
                        }
                        XCTAssertLessThanOrEqual(worst, 1, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) alpha \(alpha) beta \(beta)")
                    }
                }
            }
        }
    }

    func testBetaZeroNeverReadsC() throws {
        try Engine.setComputeDType(.bfloat16)
        let a = values(5 * 7, seed: 1), b = values(7 * 40, seed: 2)
        let got = sgemmArrays(transA: false, transB: false, m: 5, n: 40, k: 7, alpha: 1, a: a, b: b, beta: 0,
                              c: [Float](repeating: .nan, count: 5 * 40))
        XCTAssertTrue(got.allSatisfy { $0.isFinite })
    }

    func testBFloat16ProductsDifferFromFloat32AndAreRecordedAsTheSetting() throws {
        let a = randomTensor([40, 96], seed: 3), b = randomTensor([96, 24], seed: 4)
        let fp32 = a.matmul(b)
        try Engine.setComputeDType(.bfloat16)
        XCTAssertEqual(Engine.computeDType, .bfloat16)
        let bf16 = a.matmul(b)
        XCTAssertNotEqual(bf16.scalars, fp32.scalars, "bf16 products must actually round the operands")
        assertClose(bf16, fp32, rtol: 3e-2, atol: 5e-2)
        try Engine.setComputeDType(.float32)
        XCTAssertEqual(a.matmul(b).scalars, fp32.scalars)
    }

    /// A row's result does not depend on the batch it is in, nor on the thread count.
    func testBatchAndThreadIndependence() throws {
        try Engine.setComputeDType(.bfloat16)
        let saved = Engine.threads
        defer { Engine.threads = saved }
        let x = randomTensor([37, 64], seed: 5), w = randomTensor([48, 64], seed: 6)
        Engine.threads = 1
        let all = x.linear(weight: w)
        let first = x.sliced(axis: 0, 0..<3).linear(weight: w)
        XCTAssertEqual(Array(all.scalars[0..<(3 * 48)]), first.scalars)
        Engine.threads = 2
        XCTAssertEqual(x.linear(weight: w).scalars, all.scalars)
        let image = randomTensor([3, 8, 14, 14], seed: 7), kernel = randomTensor([16, 8, 3, 3], seed: 8, scale: 0.2)
        Engine.threads = 1
        let conv1 = image.conv2d(weight: kernel, padding: 1)
        Engine.threads = 2
        XCTAssertEqual(image.conv2d(weight: kernel, padding: 1).scalars, conv1.scalars)
    }

    /// Convolutions and their gradients stay close to float32: through im2col within 1e-2; through
    /// Winograd (the automatic choice for 3x3), whose transforms magnify the operands' bf16
    /// rounding about tenfold on random data, within 5e-2 (4.6e-3 on the shipped model's output).
    func testConvolutionAndGradientsCloseToFloat32() throws {
        let image = randomTensor([2, 8, 12, 12], seed: 11), kernel = randomTensor([16, 8, 3, 3], seed: 12, scale: 0.2)
        func run(_ algorithm: Conv2dAlgorithm) -> (Tensor, Tensor, Tensor) {
            let x = Tensor(shape: image.shape, image.scalars, requiresGrad: true)
            let w = Tensor(shape: kernel.shape, kernel.scalars, requiresGrad: true)
            let y = x.conv2d(weight: w, padding: 1, algorithm: algorithm)
            (y * y).sum().backward()
            return (y, x.grad!, w.grad!)
        }
        for (algorithm, bound) in [(Conv2dAlgorithm.im2col, 1e-2), (.winograd, 5e-2)] {
            try Engine.setComputeDType(.float32)
            let (y32, gx32, gw32) = run(algorithm)
            try Engine.setComputeDType(.bfloat16)
            let (y16, gx16, gw16) = run(algorithm)
            for (name, p, q) in [("output", y16, y32), ("input gradient", gx16, gx32), ("weight gradient", gw16, gw32)] {
                XCTAssertNotEqual(p.scalars, q.scalars, "\(algorithm) \(name)")
                XCTAssertLessThan(relativeDifference(p, q), bound, "\(algorithm) \(name)")
            }
        }
    }
}
