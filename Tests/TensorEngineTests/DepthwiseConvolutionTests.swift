import XCTest
import TensorEngine

/// `depthwiseConv2d` against `conv2d(groups: C)` with the filter tiled over channels (PyTorch's
/// spelling of the same op), `depthwiseConvTranspose2d` against a plain Float64 scatter, the two
/// as each other's adjoint, and both gradients by finite differences.
final class DepthwiseConvolutionTests: XCTestCase {
    /// (input shape, filter [kh, kw], stride, padding): EDM's resampling geometries (2x2 and 4x4
    /// binomial filters at stride 2) plus odd sizes, batch 1, stride 1 and 3, non-square filters.
    private let cases: [([Int], [Int], Int, Int)] = [
        ([2, 3, 8, 8], [2, 2], 2, 0),
        ([1, 4, 8, 8], [4, 4], 2, 1),
        ([2, 2, 7, 9], [4, 4], 2, 1),
        ([1, 3, 5, 6], [3, 2], 1, 1),
        ([3, 1, 9, 7], [3, 3], 3, 2),
        ([1, 2, 6, 6], [1, 1], 2, 0),
        ([2, 2, 10, 10], [4, 4], 2, 2),
    ]

    private func tiledConv(_ x: Tensor, _ f: Tensor, stride: Int, padding: Int) -> Tensor {
        let c = x.shape[1]
        let weight = Tensor.concat(Array(repeating: f.reshaped([1, 1] + f.shape), count: c), axis: 0)
        return x.conv2d(weight: weight, stride: stride, padding: padding, groups: c)
    }

    /// Float64 reference of the transposed op.
    private func referenceTranspose(_ x: Tensor, _ f: Tensor, stride s: Int, padding p: Int, outputPadding op: Int) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (f.shape[0], f.shape[1])
        let ho = (h - 1) * s - 2 * p + kh + op, wo = (w - 1) * s - 2 * p + kw + op
        var out = [Double](repeating: 0, count: n * c * ho * wo)
        let xs = x.scalars, fs = f.scalars
        for plane in 0..<(n * c) {
            for iy in 0..<h { for ix in 0..<w { for ky in 0..<kh { for kx in 0..<kw {
                let oy = iy * s - p + ky, ox = ix * s - p + kx
                guard oy >= 0, oy < ho, ox >= 0, ox < wo else { continue }
                out[(plane * ho + oy) * wo + ox] += Double(fs[ky * kw + kx]) * Double(xs[(plane * h + iy) * w + ix])
            } } } }
        }
        return Tensor(shape: [n, c, ho, wo], out.map { Float($0) })
    }

    func testForwardMatchesGroupedConvolution() {
        for (k, (shape, fshape, s, p)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(10 + k))
            let f = randomTensor(fshape, seed: UInt64(50 + k))
            assertClose(x.depthwiseConv2d(filter: f, stride: s, padding: p), tiledConv(x, f, stride: s, padding: p),
                        rtol: 1e-5, atol: 1e-6, "\(shape) \(fshape) s\(s) p\(p)")
        }
    }

    func testTransposeMatchesReferenceAndIsTheAdjoint() {
        for (k, (shape, fshape, s, p)) in cases.enumerated() {
            let x = randomTensor(shape, seed: UInt64(20 + k))
            let f = randomTensor(fshape, seed: UInt64(60 + k))
            for op in Set([0, s - 1]) {
                let (h, w) = (shape[2], shape[3])
                guard (h - 1) * s - 2 * p + fshape[0] + op > 0, (w - 1) * s - 2 * p + fshape[1] + op > 0 else { continue }
                let y = x.depthwiseConvTranspose2d(filter: f, stride: s, padding: p, outputPadding: op)
                assertClose(y, referenceTranspose(x, f, stride: s, padding: p, outputPadding: op), rtol: 1e-5, atol: 1e-6,
                            "\(shape) \(fshape) s\(s) p\(p) op\(op)")
                // <conv(z), x> == <z, convT(x)> with z of the transposed output's shape.
                let z = randomTensor(y.shape, seed: UInt64(90 + k))
                let conv = z.depthwiseConv2d(filter: f, stride: s, padding: p)
                XCTAssertEqual(conv.shape, x.shape, "\(shape) s\(s) p\(p) op\(op)")
                let lhs = zip(conv.scalars, x.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let rhs = zip(z.scalars, y.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * Swift.max(1, Swift.abs(rhs)), "adjoint \(shape) s\(s) p\(p) op\(op)")
            }
        }
    }

    func testGradientsByFiniteDifferences() {
        for (k, (shape, fshape, s, p)) in cases.prefix(5).enumerated() {
            let x = randomTensor(shape, seed: UInt64(30 + k), requiresGrad: true)
            let f = randomTensor(fshape, seed: UInt64(70 + k))
            checkGradients([x]) { $0[0].depthwiseConv2d(filter: f, stride: s, padding: p) }
            checkGradients([x]) { $0[0].depthwiseConvTranspose2d(filter: f, stride: s, padding: p, outputPadding: s - 1) }
        }
    }

    func testResultsIdenticalForOneAndTwoThreads() {
        let x = randomTensor([4, 64, 16, 16], seed: 3)
        let f = Tensor(shape: [4, 4], [1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1].map { $0 / 64 })
        let saved = Engine.threads
        defer { Engine.threads = saved }
        Engine.threads = 1
        let a = x.depthwiseConv2d(filter: f, stride: 2, padding: 1), b = x.depthwiseConvTranspose2d(filter: f, stride: 2, padding: 1)
        Engine.threads = 2
        XCTAssertEqual(x.depthwiseConv2d(filter: f, stride: 2, padding: 1).scalars, a.scalars)
        XCTAssertEqual(x.depthwiseConvTranspose2d(filter: f, stride: 2, padding: 1).scalars, b.scalars)
    }
}
