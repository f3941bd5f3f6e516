import XCTest
import TensorEngine

/// One convolution case: input [n, c, h, w], weight [o, c / groups, kh, kw].
private struct ConvCase: CustomStringConvertible {
    var n: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int
    var stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), groups = 1, bias = true
    var description: String {
        "x[\(n),\(c),\(h),\(w)] w[\(o),\(c / groups),\(kh),\(kw)] s\(stride) p\(padding) g\(groups) bias \(bias)"
    }
    func geometry() -> Conv2dGeometry {
        Conv2dGeometry(input: [n, c, h, w], weight: [o, c / groups, kh, kw], stride: stride, padding: padding, groups: groups)
    }
}

private let cases: [ConvCase] = [
    // 3x3 stride 1 (the Winograd shapes), odd sizes, batch 1, channels not multiples of 4.
    ConvCase(n: 2, c: 8, h: 9, w: 9, o: 8, kh: 3, kw: 3, padding: (1, 1)),
    ConvCase(n: 1, c: 13, h: 7, w: 11, o: 10, kh: 3, kw: 3, padding: (1, 1)),
    ConvCase(n: 3, c: 5, h: 6, w: 5, o: 7, kh: 3, kw: 3, padding: (0, 0), bias: false),
    ConvCase(n: 2, c: 9, h: 10, w: 6, o: 17, kh: 3, kw: 3, padding: (2, 1)),
    ConvCase(n: 2, c: 16, h: 4, w: 4, o: 16, kh: 3, kw: 3, padding: (1, 1)),
    ConvCase(n: 1, c: 3, h: 3, w: 3, o: 2, kh: 3, kw: 3, padding: (3, 3)),
    // Eight channels at a time in the Winograd transforms (cp, op multiples of 8), with a partly
    // used last group of output channels (14 of 16) and partly used last tiles (10 = 4 + 4 + 2).
    ConvCase(n: 2, c: 24, h: 10, w: 10, o: 14, kh: 3, kw: 3, padding: (1, 1)),
    // Stride 2, other kernels, non-square.
    ConvCase(n: 2, c: 6, h: 9, w: 8, o: 5, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1)),
    ConvCase(n: 1, c: 4, h: 11, w: 7, o: 3, kh: 5, kw: 3, stride: (2, 1), padding: (2, 0)),
    ConvCase(n: 3, c: 3, h: 8, w: 8, o: 6, kh: 4, kw: 4, stride: (2, 2), padding: (1, 1)),
    ConvCase(n: 2, c: 5, h: 7, w: 9, o: 4, kh: 2, kw: 3, stride: (3, 2), padding: (0, 1), bias: false),
    // 1x1 kernels: small images (batched path) and large ones (one product per image).
    ConvCase(n: 3, c: 7, h: 5, w: 6, o: 9, kh: 1, kw: 1),
    ConvCase(n: 2, c: 6, h: 17, w: 16, o: 5, kh: 1, kw: 1),
    ConvCase(n: 1, c: 4, h: 20, w: 20, o: 3, kh: 1, kw: 1, bias: false),
    ConvCase(n: 2, c: 4, h: 6, w: 6, o: 3, kh: 1, kw: 1, stride: (2, 2), padding: (1, 1)),
    // Groups (including depthwise).
    ConvCase(n: 2, c: 6, h: 6, w: 7, o: 4, kh: 3, kw: 3, padding: (1, 1), groups: 2),
    ConvCase(n: 1, c: 5, h: 8, w: 8, o: 10, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1), groups: 5),
    ConvCase(n: 2, c: 6, h: 5, w: 5, o: 6, kh: 1, kw: 1, groups: 3),
]

private let algorithms: [Conv2dAlgorithm] = [.automatic, .winograd, .im2col]

final class ConvolutionTests: XCTestCase {
    private func inputs(_ k: ConvCase, seed: UInt64) -> (Tensor, Tensor, Tensor?) {
        let fanIn = Float(k.c / k.groups * k.kh * k.kw)
        let x = randomTensor([k.n, k.c, k.h, k.w], seed: seed)
        let w = randomTensor([k.o, k.c / k.groups, k.kh, k.kw], seed: seed + 1, scale: 1 / fanIn.squareRoot())
        let b = k.bias ? randomTensor([k.o], seed: seed + 2) : nil
        return (x, w, b)
    }

    /// Tolerances: Winograd F(4x4,3x3) is a little less exact than a direct sum.
    private func tolerance(_ alg: Conv2dAlgorithm) -> (Float, Float) { alg == .im2col ? (1e-5, 2e-5) : (1e-4, 1e-4) }

    func testForwardMatchesReference() {
        for (i, k) in cases.enumerated() {
            let (x, w, b) = inputs(k, seed: UInt64(10 * i + 1))
            let expected = Reference.conv2d(x, w, bias: b, k.geometry())
            for alg in algorithms {
                let y = x.conv2d(weight: w, bias: b, stride: k.stride, padding: k.padding, groups: k.groups, algorithm: alg)
                let (rtol, atol) = tolerance(alg)
                assertClose(y, expected, rtol: rtol, atol: atol, "\(k) \(alg)")
            }
        }
    }

    func testBackwardMatchesReference() {
        for (i, k) in cases.enumerated() {
            let (x0, w0, b0) = inputs(k, seed: UInt64(10 * i + 3))
            let g = k.geometry()
            let gy = randomTensor(g.outputShape, seed: UInt64(10 * i + 7))
            let ex = Reference.conv2dBackwardInput(gy, w0, g)
            let ew = Reference.conv2dBackwardWeight(gy, x0, g)
            let eb = Reference.conv2dBackwardBias(gy)
            for alg in algorithms {
                let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
                let w = Tensor(shape: w0.shape, storage: w0.storage, requiresGrad: true)
                let b = b0.map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) }
                let y = x.conv2d(weight: w, bias: b, stride: k.stride, padding: k.padding, groups: k.groups, algorithm: alg)
                y.backward(gy)
                let (rtol, atol) = tolerance(alg)
                assertClose(x.grad!, ex, rtol: rtol, atol: atol, "input gradient \(k) \(alg)")
                // Weight gradients sum over n * ho * wo terms: scale the tolerance with that.
                let wscale = Float(g.n * g.ho * g.wo).squareRoot()
                assertClose(w.grad!, ew, rtol: rtol, atol: atol * wscale, "weight gradient \(k) \(alg)")
                if let b { assertClose(b.grad!, eb, rtol: 1e-5, atol: 1e-4, "bias gradient \(k) \(alg)") }
            }
        }
    }

    /// Shapes large enough to need several chunks (Winograd tile rows, im2col images and row blocks).
    func testChunkedShapesMatchReference() {
        let big: [(ConvCase, Conv2dAlgorithm)] = [
            (ConvCase(n: 9, c: 12, h: 30, w: 29, o: 10, kh: 3, kw: 3, padding: (1, 1)), .winograd),
            (ConvCase(n: 9, c: 12, h: 14, w: 14, o: 10, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1)), .im2col),
            (ConvCase(n: 5, c: 6, h: 40, w: 33, o: 7, kh: 1, kw: 1), .automatic),
            // One image's columns exceed the chunk budget: blocks of output rows.
            (ConvCase(n: 1, c: 64, h: 96, w: 96, o: 2, kh: 3, kw: 3, padding: (1, 1)), .im2col),
        ]
        for (i, (k, alg)) in big.enumerated() {
            let (x0, w0, b0) = inputs(k, seed: UInt64(100 + i))
            let g = k.geometry()
            let gy = randomTensor(g.outputShape, seed: UInt64(200 + i))
            let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
            let w = Tensor(shape: w0.shape, storage: w0.storage, requiresGrad: true)
            let y = x.conv2d(weight: w, bias: b0, stride: k.stride, padding: k.padding, groups: k.groups, algorithm: alg)
            let (rtol, atol) = tolerance(alg)
            assertClose(y, Reference.conv2d(x0, w0, bias: b0, g), rtol: rtol, atol: atol, "forward \(k)")
            y.backward(gy)
            assertClose(x.grad!, Reference.conv2dBackwardInput(gy, w0, g), rtol: rtol, atol: atol, "input grad \(k)")
            let wscale = Float(g.n * g.ho * g.wo).squareRoot()
            assertClose(w.grad!, Reference.conv2dBackwardWeight(gy, x0, g), rtol: rtol, atol: atol * wscale,
                        "weight grad \(k)")
        }
    }

    func testGradientsByFiniteDifferences() {
        let tiny: [ConvCase] = [
            ConvCase(n: 2, c: 3, h: 5, w: 4, o: 2, kh: 3, kw: 3, padding: (1, 1)),
            ConvCase(n: 1, c: 2, h: 5, w: 5, o: 3, kh: 3, kw: 3, stride: (2, 2), padding: (1, 0)),
            ConvCase(n: 2, c: 4, h: 3, w: 3, o: 2, kh: 1, kw: 1, groups: 2),
        ]
        for (i, k) in tiny.enumerated() {
            let (x, w, b) = inputs(k, seed: UInt64(300 + i))
            for alg in algorithms {
                checkGradients([x, w, b!]) { t in
                    t[0].conv2d(weight: t[1], bias: t[2], stride: k.stride, padding: k.padding, groups: k.groups,
                                algorithm: alg)
                }
            }
        }
    }

    func testIntOverloadAndBiasFreeGradient() {
        let x = randomTensor([1, 3, 6, 6], seed: 5), w = randomTensor([4, 3, 3, 3], seed: 6)
        let y = x.conv2d(weight: w, stride: 2, padding: 1)
        XCTAssertEqual(y.shape, [1, 4, 3, 3])
        let g = Conv2dGeometry(input: x.shape, weight: w.shape, stride: (2, 2), padding: (1, 1), groups: 1)
        assertClose(y, Reference.conv2d(x, w, bias: nil, g), rtol: 1e-5, atol: 1e-5)
        // Only the weight needs a gradient.
        let wg = Tensor(shape: w.shape, storage: w.storage, requiresGrad: true)
        x.conv2d(weight: wg, padding: 1).sum().backward()
        XCTAssertEqual(wg.grad?.shape, w.shape)
    }

    func testResultsIdenticalForOneAndTwoThreads() {
        let saved = Engine.threads
        defer { Engine.threads = saved }
        let shapes: [(ConvCase, Conv2dAlgorithm)] = [
            (ConvCase(n: 6, c: 16, h: 14, w: 14, o: 12, kh: 3, kw: 3, padding: (1, 1)), .winograd),
            (ConvCase(n: 6, c: 16, h: 14, w: 14, o: 12, kh: 3, kw: 3, padding: (1, 1)), .im2col),
            (ConvCase(n: 5, c: 6, h: 11, w: 9, o: 8, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1), groups: 2), .automatic),
            (ConvCase(n: 4, c: 8, h: 16, w: 17, o: 6, kh: 1, kw: 1), .automatic),
        ]
        for (k, alg) in shapes {
            var results: [[[Float]]] = []
            for threads in [1, 2] {
                Engine.threads = threads
                let (x0, w0, b0) = inputs(k, seed: 77)
                let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
                let w = Tensor(shape: w0.shape, storage: w0.storage, requiresGrad: true)
                let b = Tensor(shape: b0!.shape, storage: b0!.storage, requiresGrad: true)
                let y = x.conv2d(weight: w, bias: b, stride: k.stride, padding: k.padding, groups: k.groups, algorithm: alg)
                y.backward(randomTensor(y.shape, seed: 78))
                results.append([y.scalars, x.grad!.scalars, w.grad!.scalars, b.grad!.scalars])
            }
            for (name, (a, b)) in zip(["output", "input grad", "weight grad", "bias grad"], zip(results[0], results[1])) {
                let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
                XCTAssertNil(first, "\(k) \(alg): \(name) differs between 1 and 2 threads at \(first.map { "\($0.offset): \($0.element)" } ?? "")")
            }
        }
    }
}

final class PoolingTests: XCTestCase {
    private let poolCases: [([Int], (Int, Int), (Int, Int))] = [
        ([2, 3, 8, 8], (2, 2), (2, 2)),
        ([1, 2, 7, 9], (2, 2), (2, 2)),      // odd sizes: the last row/column is dropped
        ([2, 3, 9, 7], (3, 2), (2, 3)),
        ([1, 4, 6, 5], (3, 3), (1, 1)),      // overlapping windows
        ([3, 1, 5, 8], (1, 4), (1, 4)),
    ]

    func testAvgPoolMatchesReference() {
        for (i, (shape, k, s)) in poolCases.enumerated() {
            let x0 = randomTensor(shape, seed: UInt64(400 + i))
            let x = Tensor(shape: shape, storage: x0.storage, requiresGrad: true)
            let y = x.avgPool2d(kernel: k, stride: s)
            assertClose(y, Reference.avgPool2d(x0, kernel: k, stride: s), rtol: 1e-5, atol: 1e-6, "\(shape) \(k) \(s)")
            let gy = randomTensor(y.shape, seed: UInt64(500 + i))
            y.backward(gy)
            assertClose(x.grad!, Reference.avgPool2dBackward(gy, inputShape: shape, kernel: k, stride: s),
                        rtol: 1e-5, atol: 1e-6, "backward \(shape) \(k) \(s)")
        }
        XCTAssertEqual(randomTensor([1, 1, 4, 6], seed: 1).avgPool2d(kernel: 2).shape, [1, 1, 2, 3])
    }

    func testUpsampleMatchesReference() {
        let upCases: [([Int], (Int, Int))] = [([2, 3, 4, 5], (2, 2)), ([1, 2, 3, 3], (3, 3)), ([2, 1, 5, 2], (1, 3)), ([1, 2, 2, 3], (2, 1))]
        for (i, (shape, s)) in upCases.enumerated() {
            let x0 = randomTensor(shape, seed: UInt64(600 + i))
            let x = Tensor(shape: shape, storage: x0.storage, requiresGrad: true)
            let y = s == (2, 2) ? x.upsampleNearest2x() : x.upsampleNearest(scale: s)
            XCTAssertEqual(y.scalars, Reference.upsampleNearest(x0, scale: s).scalars, "\(shape) \(s)")
            let gy = randomTensor(y.shape, seed: UInt64(700 + i))
            y.backward(gy)
            assertClose(x.grad!, Reference.upsampleNearestBackward(gy, scale: s), rtol: 1e-5, atol: 1e-6,
                        "backward \(shape) \(s)")
        }
        XCTAssertEqual(randomTensor([1, 1, 2, 2], seed: 1).upsampleNearest(scale: 3).shape, [1, 1, 6, 6])
    }

    func testGradientsByFiniteDifferences() {
        let x = randomTensor([2, 2, 5, 6], seed: 800)
        checkGradients([x]) { $0[0].avgPool2d(kernel: 2) }
        checkGradients([x]) { $0[0].avgPool2d(kernel: (3, 2), stride: (1, 2)) }
        checkGradients([x]) { $0[0].upsampleNearest2x() }
        checkGradients([x]) { $0[0].upsampleNearest(scale: (3, 1)) }
    }

    func testResultsIdenticalForOneAndTwoThreads() {
        let saved = Engine.threads
        defer { Engine.threads = saved }
        var results: [[Float]] = []
        for threads in [1, 2] {
            Engine.threads = threads
            let x = Tensor(shape: [8, 16, 32, 32], storage: randomTensor([8, 16, 32, 32], seed: 900).storage, requiresGrad: true)
            let y = x.avgPool2d(kernel: 3, stride: 1).upsampleNearest2x()
            y.backward(randomTensor(y.shape, seed: 901))
            results.append(y.scalars + x.grad!.scalars)
        }
        XCTAssert(results[0] == results[1], "pooling results differ between 1 and 2 threads")
    }
}
