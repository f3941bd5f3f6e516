import Foundation
import XCTest
@testable import TensorEngine

/// Second-order autodiff: Hessian-vector products from create-graph backward passes against
/// central finite differences of ordinary gradients, for every differentiable op; the refusal of
/// an op without a differentiable backward; first-order agreement of the two kinds of pass.
final class SecondOrderTests: XCTestCase {
    /// Checks H v for L(xs) = sum(f(xs)^2 R) / 2 + sum(f(xs) R') at `inputs`, with one random
    /// direction v per input: the analytic product (gradient of <grad L, v> with a create-graph
    /// first pass) against (grad L(x + h v) - grad L(x - h v)) / 2h. The square makes the op's
    /// Jacobian enter twice, the linear term its second derivative.
    func checkHVP(_ inputs: [Tensor], h: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 1e-3,
                  backend: (any ComputeBackend)? = nil, file: StaticString = #filePath, line: UInt = #line,
                  _ f: ([Tensor]) -> Tensor) {
        if let message = hvpMismatch(inputs, h: h, rtol: rtol, atol: atol, backend: backend, f) {
            XCTFail(message, file: file, line: line)
        }
    }

    /// The first disagreement `checkHVP` finds, or nil.
    func hvpMismatch(_ inputs: [Tensor], h: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 1e-3,
                     backend: (any ComputeBackend)? = nil, _ f: ([Tensor]) -> Tensor) -> String? {
        let run: (() -> String?) -> String? = { body in
            if let backend { return Engine.withBackend(any: backend, body) } else { return body() }
        }
        return run {
            let probe = Autograd.noGrad { f(inputs) }
            let r1 = randomTensor(probe.shape, seed: 0xBEEF), r2 = randomTensor(probe.shape, seed: 0xF00D)
            func loss(_ xs: [Tensor]) -> Tensor {
                let y = f(xs)
                return (y.square() * r1).sum() * 0.5 + (y * r2).sum()
            }
            let directions = inputs.enumerated().map { randomTensor($0.element.shape, seed: 0xD1 + UInt64($0.offset)) }
            let leaves = inputs.map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) }
            let analytic: [Tensor]
            do {
                let l = Autograd.withGrad { loss(leaves) }
                let grads = try gradient(of: l, wrt: leaves, createGraph: true)
                var dot = Tensor(0)
                for (g, v) in zip(grads, directions) { dot = dot + (g * v).sum() }
                analytic = try gradient(of: dot, wrt: leaves)
            } catch {
                return "\(error)"
            }
            func shifted(_ s: Float) -> [Tensor] {
                let xs = zip(inputs, directions).map { x, v in Autograd.noGrad { x + v * s } }
                return valueAndGradient(at: xs) { loss($0) }.gradients
            }
            let plus = shifted(h), minus = shifted(-h)
            for k in inputs.indices {
                let numeric = Autograd.noGrad { (plus[k] - minus[k]) * (1 / (2 * h)) }.scalars
                let a = analytic[k].scalars
                let scale = numeric.map { Swift.abs($0) }.max() ?? 0
                for i in a.indices where !(Swift.abs(a[i] - numeric[i]) <= atol + rtol * scale) {
                    return "H v of input \(k) element \(i): analytic \(a[i]), numeric \(numeric[i]) (scale \(scale), shape \(inputs[k].shape))"
                }
            }
            return nil
        }
    }

    func testTheCheckCatchesAWrongSecondDerivative() {
        // x^2 whose differentiable backward treats x as a constant: first order right, second wrong.
        let x = r([4], 50)
        let wrong = hvpMismatch([x]) { xs in
            let y = xs[0]
            return Autograd.noGrad { y.square() }.recorded("square_with_constant_backward", [y], backward: { g in [g * y * 2] },
                                                         differentiableBackward: { g in [g * y.detached() * 2] })
        }
        XCTAssertNotNil(wrong)
        XCTAssertNil(hvpMismatch([x]) { $0[0].square() })
    }

    func r(_ shape: [Int], _ seed: UInt64, scale: Float = 1, shift: Float = 0) -> Tensor {
        randomTensor(shape, seed: seed, scale: scale, shift: shift)
    }

    func testBinaryArithmetic() {
        let a = r([2, 3], 1), b = r([3], 2, scale: 0.3, shift: 2)
        checkHVP([a, b]) { $0[0] + $0[1] }
        checkHVP([a, b]) { $0[0] - $0[1] }
        checkHVP([a, b]) { $0[0] * $0[1] }
        checkHVP([a, b]) { $0[0] / $0[1] }
        checkHVP([b, a]) { $0[0].pow($0[1] * 0.5) }
        checkHVP([a, b]) { $0[0].minimum($0[1] - 2) * $0[1] }
        checkHVP([a, b]) { $0[0].maximum($0[1] - 2) * $0[1] }
        checkHVP([a, b]) { Tensor.where($0[0].greater(0), $0[0] * $0[1], $0[1].square()) }
    }

    func testScalarArithmetic() {
        let a = r([2, 3], 3, scale: 0.3, shift: 1.5)
        checkHVP([a]) { -$0[0] * $0[0] }
        checkHVP([a]) { ($0[0] + 2) * $0[0] }
        checkHVP([a]) { (2 - $0[0]) * $0[0] }
        checkHVP([a]) { ($0[0] * 3) * $0[0] }
        checkHVP([a]) { 2 / $0[0] }
        checkHVP([a]) { $0[0].pow(3) }
        checkHVP([a]) { $0[0].pow(0.5) }
        checkHVP([a]) { $0[0].pow(-1.5) }
        checkHVP([a]) { $0[0].square() }
    }

    func testUnaryMath() {
        let positive = r([2, 5], 4, scale: 0.3, shift: 1.5), any = r([2, 5], 5)
        for (name, f) in [("exp", { (x: Tensor) in x.exp() }), ("log", { $0.log() }), ("sqrt", { $0.sqrt() }),
                          ("rsqrt", { $0.rsqrt() })] as [(String, (Tensor) -> Tensor)] {
            checkHVP([positive]) { f($0[0]) }
            _ = name
        }
        for f in [{ (x: Tensor) in x.sin() }, { $0.cos() }, { $0.sigmoid() }, { $0.tanh() }, { $0.silu() },
                  { $0.softplus() }, { $0.gelu() }, { $0.gelu(approximate: true) }, { $0.quickGelu() }] as [(Tensor) -> Tensor] {
            checkHVP([any]) { f($0[0]) }
        }
    }

    func testPiecewiseLinearOpsHaveZeroSecondDerivativeAwayFromKinks() {
        // Values at least 0.1 from every kink, so +-h v does not cross one.
        let x = Tensor(shape: [6], [-1.2, -0.4, 0.3, 0.8, 1.6, -2.0])
        checkHVP([x]) { $0[0].relu() * $0[0] }
        checkHVP([x]) { $0[0].abs() * $0[0] }
        checkHVP([x]) { $0[0].clamp(min: -0.5, max: 1) * $0[0] }
        checkHVP([x]) { $0[0].sign() * $0[0].square() }
        checkHVP([x]) { $0[0].max(axes: [0]) * $0[0] }
        checkHVP([x]) { $0[0].min(axes: [0]) * $0[0] }
    }

    func testReductions() {
        let x = r([2, 3, 4], 6)
        checkHVP([x]) { $0[0].sum(axes: [1]) }
        checkHVP([x]) { $0[0].mean(axes: [0, 2], keepDims: true) }
        checkHVP([x]) { $0[0].variance(axes: [2]) }
        checkHVP([x]) { $0[0].logSumExp(axes: [1]) }
    }

    func testShapeOps() {
        let x = r([2, 3, 4], 7), y = r([2, 2, 4], 8)
        checkHVP([x]) { $0[0].reshaped([6, 4]).exp() }
        checkHVP([x]) { $0[0].permuted([2, 0, 1]) * $0[0].permuted([2, 0, 1]).sin() }
        checkHVP([x]) { $0[0].sliced(axis: 1, 1..<3).tanh() }
        checkHVP([x]) { $0[0].padded(axis: 2, before: 1, after: 2).sin() }
        checkHVP([y]) { $0[0].sum(axes: [1], keepDims: true).expanded(to: [2, 5, 4]).sin() }
        checkHVP([x, y]) { Tensor.concat([$0[0], $0[1]], axis: 1).sin() }
        checkHVP([x]) { $0[0].gatherRows([1, 0, 1]).sin() }
        checkHVP([x, y.sliced(axis: 0, 0..<1).reshaped([1, 2, 4]).padded(axis: 1, before: 0, after: 1)]) {
            $0[0].replacingRows([1], with: $0[1]).sin()
        }
        let table = r([5, 3], 9)
        checkHVP([table]) { Tensor.embedding(indices: Tensor(shape: [2, 2], [4, 0, 4, 2]), weight: $0[0]).sin() }
    }

    func testProducts() {
        let a = r([2, 3, 4], 10, scale: 0.5), b = r([4, 5], 11, scale: 0.5), c = r([2, 5, 4], 12, scale: 0.5)
        checkHVP([a, b]) { $0[0].matmul($0[1]) }
        checkHVP([a, c]) { $0[0].matmul($0[1].transposed()).sin() }
        let w = r([5, 4], 13, scale: 0.5), bias = r([5], 14)
        checkHVP([a, w, bias]) { $0[0].linear(weight: $0[1], bias: $0[2]).sin() }
    }

    func testConvolutionsAndPooling() {
        let x = r([2, 4, 6, 6], 15, scale: 0.5)
        let w3 = r([3, 4, 3, 3], 16, scale: 0.3), w1 = r([5, 4, 1, 1], 17, scale: 0.3), b = r([3], 18)
        let wg = r([4, 2, 3, 3], 19, scale: 0.3)
        checkHVP([x, w3, b]) { $0[0].conv2d(weight: $0[1], bias: $0[2], padding: 1).sin() }                 // Winograd
        checkHVP([x, w1]) { $0[0].conv2d(weight: $0[1]).sin() }                                            // pointwise
        checkHVP([x, w3, b]) { $0[0].conv2d(weight: $0[1], bias: $0[2], stride: 2, padding: 1).sin() }      // im2col
        checkHVP([x, wg]) { $0[0].conv2d(weight: $0[1], padding: 1, groups: 2).sin() }
        checkHVP([x]) { $0[0].avgPool2d(kernel: 2).sin() }
        checkHVP([x]) { $0[0].upsampleNearest2x().sin() }
        let fir = Tensor(shape: [4, 4], [1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1].map { $0 / 64 })
        checkHVP([x]) { $0[0].depthwiseConv2d(filter: fir, stride: 2, padding: 1).sin() }
        checkHVP([x]) { $0[0].depthwiseConvTranspose2d(filter: fir, stride: 2, padding: 1).sin() }
    }

    func testFusedLayers() {
        let x = r([2, 4, 3, 3], 20), w = r([4], 21, scale: 0.3, shift: 1), b = r([4], 22)
        checkHVP([x, w, b]) { $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2]) }
        checkHVP([x, w, b]) { $0[0].groupNormSiLU(groups: 2, weight: $0[1], bias: $0[2]) }
        let s = r([3, 2, 5], 23), lw = r([5], 24, scale: 0.3, shift: 1), lb = r([5], 25)
        checkHVP([s, lw, lb]) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
        checkHVP([s]) { $0[0].softmax(axis: -1) }
        checkHVP([s]) { $0[0].softmax(axis: 1) }
        checkHVP([s]) { $0[0].logSoftmax(axis: -1) }
        checkHVP([s]) { $0[0].logSoftmax(axis: 0) }
        let q = r([2, 3, 4], 26), k = r([2, 5, 4], 27), v = r([2, 5, 3], 28), mask = r([3, 5], 29)
        checkHVP([q, k, v, mask]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], attentionMask: $0[3])
        }
        checkHVP([q, k.sliced(axis: 1, 0..<3), v.sliced(axis: 1, 0..<3)]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true)
        }
        // The same tensor as query, key and value: each use gets its own gradient.
        checkHVP([q]) { Tensor.scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[0]) }
    }

    func testDropout() {
        let x = r([3, 7], 30)
        checkHVP([x]) { xs in
            var g = RandomGenerator(seed: 5)
            return xs[0].dropout(probability: 0.3, generator: &g).sin()
        }
    }

    func testOnTheReferenceBackend() {
        let x = r([2, 4, 4, 4], 31, scale: 0.5), w = r([4, 4, 3, 3], 32, scale: 0.3)
        let gw = r([4], 33, scale: 0.3, shift: 1), gb = r([4], 34)
        checkHVP([x, w, gw, gb], backend: ReferenceBackend.shared) {
            $0[0].conv2d(weight: $0[1], padding: 1).groupNormSiLU(groups: 2, weight: $0[2], bias: $0[3]).avgPool2d(kernel: 2)
        }
        let q = r([2, 3, 4], 35)
        checkHVP([q], backend: ReferenceBackend.shared) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[0]).layerNorm().softmax()
        }
    }

    func testThirdOrderThroughElementwiseOps() throws {
        // f = x^2 sin x at 0.7: f''' = 6 cos x - 6 x sin x - x^2 cos x.
        let x = Tensor(shape: [1], [0.7], requiresGrad: true)
        let y = Autograd.withGrad { (x.square() * x.sin()).sum() }
        let g1 = try gradient(of: y, wrt: [x], createGraph: true)[0]
        let g2 = try gradient(of: g1.sum(), wrt: [x], createGraph: true)[0]
        let g3 = try gradient(of: g2.sum(), wrt: [x])[0]
        let v = 0.7
        let expected = 6 * Foundation.cos(v) - 6 * v * Foundation.sin(v) - v * v * Foundation.cos(v)
        XCTAssertEqual(Double(g3.item), expected, accuracy: 1e-5)
    }

    func testOpWithoutDifferentiableBackwardIsRefusedByName() {
        let x = Tensor(shape: [3], [1, 2, 3], requiresGrad: true)
        let y = Autograd.withGrad {
            let opaque = Tensor(shape: [3], [2, 4, 6]).recorded("opaque_kernel", [x]) { g in [g * 2] }
            return (opaque * x).sum()
        }
        XCTAssertThrowsError(try gradient(of: y, wrt: [x], createGraph: true)) { error in
            XCTAssertEqual(error as? AutogradError, .noSecondDerivative(op: "opaque_kernel"))
            XCTAssert("\(error)".contains("opaque_kernel"))
        }
        XCTAssertThrowsError(try y.backward(createGraph: true))
        XCTAssertNil(x.grad, "the refused pass computed nothing")
        // The ordinary pass still works through it.
        XCTAssertEqual(try gradient(of: y, wrt: [x])[0].scalars, [4, 8, 12])
    }

    func testGradientOfIntermediateTensorsAndLeafAccumulation() throws {
        let x = Tensor(shape: [2], [1, 2], requiresGrad: true)
        let (u, y): (Tensor, Tensor) = Autograd.withGrad {
            let u = x * 3
            return (u, (u.square() + x).sum())
        }
        let g = try gradient(of: y, wrt: [u, x], retainGraph: true)
        XCTAssertEqual(g[0].scalars, [6, 12])          // 2u
        XCTAssertEqual(g[1].scalars, [19, 37])         // 18 x + 1
        XCTAssertNil(x.grad)
        try y.backward(createGraph: true)
        XCTAssertEqual(x.grad!.scalars, [19, 37])
        XCTAssertTrue(x.grad!.requiresGrad, "a create-graph gradient carries history")
        let hx = try gradient(of: x.grad!.sum(), wrt: [x])[0]
        XCTAssertEqual(hx.scalars, [18, 18])
        XCTAssertThrowsError(try gradient(of: y, wrt: [Tensor(shape: [2], [0, 0])]))
    }

    func testCreateGraphFirstOrderMatchesOrdinaryBackward() throws {
        // Same gradients from both kinds of pass on a block with every fused layer.
        let x = r([2, 4, 4, 4], 40, scale: 0.5), w = r([8, 4, 3, 3], 41, scale: 0.3)
        func f(_ xs: [Tensor]) -> Tensor {
            let h = xs[0].conv2d(weight: xs[1], padding: 1).groupNormSiLU(groups: 4)
            let t = h.reshaped([2, 8, 16]).transposed(1, 2)
            let a = Tensor.scaledDotProductAttention(query: t, key: t, value: t).layerNorm()
            return (a.softmax() * a).sum()
        }
        let ordinary = valueAndGradient(at: [x, w]) { f($0) }.gradients
        let leaves = [x, w].map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) }
        let recorded = try gradient(of: Autograd.withGrad { f(leaves) }, wrt: leaves, createGraph: true)
        for (a, b) in zip(recorded, ordinary) { assertClose(a, b, rtol: 1e-4, atol: 1e-5) }
    }
}
