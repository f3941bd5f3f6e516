import Foundation

/// The second backend: every kernel as the plainest code that computes it, for checking the CPU
/// backend and for proving that the layers above the engine run on any backend. Elementwise math
/// in Float64 with libm (no fast exp or tanh), direct index loops for every layout op, triple loops
/// with Float64 accumulation for products (`Reference.matmul`), the direct-loop image ops
/// (`Reference.conv2d`, ...), and the fused layers composed from primitives (`Reference.groupNorm`,
/// ...) with their gradients from autodiff of those compositions. Single-threaded, allocation-happy and slow
/// (the U-Net parity fixtures run in seconds, not milliseconds); never the default.
///
/// It agrees with `CPUBackend` to rounding (the agreement tests bound each op), and bit for bit on
/// exact ops: copies, layout ops, comparisons, random numbers, the 16-bit conversions of finite
/// values. Where a kernel of the CPU backend has its own documented edge-case semantics (a fully
/// masked attention row gives zeros) this backend follows them.
public final class ReferenceBackend: ComputeBackend {
    public static let shared = ReferenceBackend()
    public var name: String { "reference" }
    private init() {}
}

// MARK: - Index helpers

/// Row-major strides of `shape`.
private func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { strides[i] = s; s *= shape[i] }
    return strides
}

/// Calls body(outputIndex, offsets) for every element of `outShape` in row-major order, with the
/// element offset of each input under broadcasting.
private func forEachBroadcast(_ outShape: [Int], _ inputs: [[Int]], _ body: (Int, [Int]) -> Void) {
    let n = Tensor.elementCount(outShape)
    if n == 0 { return }
    let strides = inputs.map { broadcastStrides($0, to: outShape) }
    var index = [Int](repeating: 0, count: outShape.count)
    var offsets = [Int](repeating: 0, count: inputs.count)
    for i in 0..<n {
        body(i, offsets)
        // Advance the multi-index like an odometer.
        var d = outShape.count - 1
        while d >= 0 {
            index[d] += 1
            for k in 0..<inputs.count { offsets[k] += strides[k][d] }
            if index[d] < outShape[d] { break }
            for k in 0..<inputs.count { offsets[k] -= strides[k][d] * outShape[d] }
            index[d] = 0
            d -= 1
        }
    }
}

/// A fresh tensor of `shape` filled by `value(i)` for each row-major index i.
private func generated(_ shape: [Int], _ value: (Int) -> Float) -> Tensor {
    let out = Tensor.uninitialized(shape)
    let p = out.pointer
    for i in 0..<out.count { p[i] = value(i) }
    return out
}

/// Leaves sharing `inputs`' values, `f` of them recorded, and the gradient of sum(f * gradient)
/// with respect to each (zeros where f does not depend on it): the vector-Jacobian product by
/// autodiff of a composition of primitive ops.
private func vectorJacobianProduct(_ inputs: [Tensor?], gradient: Tensor, _ f: ([Tensor?]) -> Tensor) -> [Tensor?] {
    let leaves = inputs.map { $0.map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) } }
    let y = Autograd.withGrad { f(leaves) }
    y.backward(gradient)
    return leaves.map { $0.map { $0.grad ?? Tensor.zeros($0.shape) } }
}

// MARK: - Elementwise

extension ReferenceBackend {
    static func value(_ op: UnaryOp, _ x: Float) -> Float {
        let d = Double(x)
        switch op {
        case .negate: return -x
        case .addScalar(let s): return x + s
        case .multiplyScalar(let s): return x * s
        case .subtractFromScalar(let s): return s - x
        case .divideScalar(let s): return s / x
        case .powScalar(let p): return Float(Foundation.pow(d, Double(p)))
        case .square: return x * x
        case .exp: return Float(Foundation.exp(d))
        case .log: return Float(Foundation.log(d))
        case .sqrt: return Float(d.squareRoot())
        case .rsqrt: return Float(1 / d.squareRoot())
        case .abs: return Swift.abs(x)
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .sin: return Float(Foundation.sin(d))
        case .cos: return Float(Foundation.cos(d))
        case .clamp(let lo, let hi): return Swift.min(Swift.max(x, lo), hi)
        case .sigmoid: return Float(1 / (1 + Foundation.exp(-d)))
        case .tanh: return Float(Foundation.tanh(d))
        case .silu: return Float(d / (1 + Foundation.exp(-d)))
        case .relu: return Swift.max(x, 0)
        case .softplus: return d > 20 ? x : Float(Foundation.log1p(Foundation.exp(d)))
        case .gelu: return Float(0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot())))
        case .geluTanh:
            return Float(0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d))))
        case .quickGelu: return Float(d / (1 + Foundation.exp(-1.702 * d)))
        case .greaterThan(let s): return x > s ? 1 : 0
        case .lessThan(let s): return x < s ? 1 : 0
        case .nonzero: return x != 0 ? 1 : 0
        }
    }

    /// d op / dx at x (or, for ops whose gradient uses the output, expressed through y).
    static func derivative(_ op: UnaryOp, _ v: Float) -> Double {
        let x = Double(v), y = Double(v)
        func sigmoid(_ t: Double) -> Double { 1 / (1 + Foundation.exp(-t)) }
        switch op {
        case .divideScalar(let s): return -Double(s) / (x * x)
        case .powScalar(let p): return Double(p) * Foundation.pow(x, Double(p) - 1)
        case .square: return 2 * x
        case .exp: return y
        case .log: return 1 / x
        case .sqrt: return 0.5 / y
        case .rsqrt: return -0.5 * y * y * y
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .sin: return Foundation.cos(x)
        case .cos: return -Foundation.sin(x)
        case .clamp(let lo, let hi): return (v >= lo && v <= hi) ? 1 : 0
        case .sigmoid: return y * (1 - y)
        case .tanh: return 1 - y * y
        case .silu: let s = sigmoid(x); return s * (1 + x * (1 - s))
        case .relu: return x > 0 ? 1 : 0
        case .softplus: return sigmoid(x)
        case .gelu: return 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        case .geluTanh:
            let c = (2 / Double.pi).squareRoot()
            let t = Foundation.tanh(c * (x + 0.044715 * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        case .quickGelu: let s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1 - s)
        case .negate, .addScalar, .multiplyScalar, .subtractFromScalar, .sign, .greaterThan, .lessThan, .nonzero:
            preconditionFailure("unaryGradient: \(op) has no gradient kernel")
        }
    }

    static func value(_ op: BinaryOp, _ a: Float, _ b: Float) -> Float {
        switch op {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        case .pow: return Float(Foundation.pow(Double(a), Double(b)))
        case .minimum: return Swift.min(a, b)
        case .maximum: return Swift.max(a, b)
        case .greater: return a > b ? 1 : 0
        case .less: return a < b ? 1 : 0
        case .equal: return a == b ? 1 : 0
        case .minimumWeight: return a < b ? 1 : (a == b ? 0.5 : 0)
        case .maximumWeight: return a > b ? 1 : (a == b ? 0.5 : 0)
        }
    }

    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        let p = x.pointer
        return generated(x.shape) { ReferenceBackend.value(op, p[$0]) }
    }

    public func unaryGradient(_ op: UnaryOp, gradient: Tensor, operand: Tensor) -> Tensor {
        let g = gradient.pointer, o = operand.pointer
        return generated(operand.shape) { Float(Double(g[$0]) * ReferenceBackend.derivative(op, o[$0])) }
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = broadcastShape(a.shape, b.shape, op: "binary")
        let out = Tensor.uninitialized(shape)
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        forEachBroadcast(shape, [a.shape, b.shape]) { i, off in po[i] = ReferenceBackend.value(op, pa[off[0]], pb[off[1]]) }
        return out
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = broadcastShape(condition.shape, broadcastShape(a.shape, b.shape, op: "where"), op: "where")
        let out = Tensor.uninitialized(shape)
        let pc = condition.pointer, pa = a.pointer, pb = b.pointer, po = out.pointer
        forEachBroadcast(shape, [condition.shape, a.shape, b.shape]) { i, off in
            po[i] = pc[off[0]] != 0 ? pa[off[1]] : pb[off[2]]
        }
        return out
    }
}

// MARK: - Reductions

extension ReferenceBackend {
    public func sum(_ x: Tensor, _ L: ReductionLayout) -> Tensor {
        let p = x.pointer
        return generated([L.outer * L.inner]) { k in
            let o = k / Swift.max(L.inner, 1), i = k % Swift.max(L.inner, 1)
            var acc = 0.0
            for r in 0..<L.reduced { acc += Double(p[(o * L.reduced + r) * L.inner + i]) }
            return Float(acc)
        }
    }

    public func extremum(_ x: Tensor, _ L: ReductionLayout, largest: Bool) -> Tensor {
        let p = x.pointer
        return generated([L.outer * L.inner]) { k in
            let o = k / Swift.max(L.inner, 1), i = k % Swift.max(L.inner, 1)
            var best = p[o * L.reduced * L.inner + i]
            for r in 1..<Swift.max(L.reduced, 1) {
                let v = p[(o * L.reduced + r) * L.inner + i]
                if largest ? v > best : v < best { best = v }
            }
            return best
        }
    }

    public func argExtremum(_ x: Tensor, _ L: ReductionLayout, largest: Bool) -> Tensor {
        let p = x.pointer
        return generated([L.outer * L.inner]) { k in
            let o = k / Swift.max(L.inner, 1), i = k % Swift.max(L.inner, 1)
            var best = p[o * L.reduced * L.inner + i], bestIndex = 0
            for r in 1..<Swift.max(L.reduced, 1) {
                let v = p[(o * L.reduced + r) * L.inner + i]
                if largest ? v > best : v < best { best = v; bestIndex = r }
            }
            return Float(bestIndex)
        }
    }

    public func sumOfSquares(_ tensors: [Tensor]) -> Double {
        var total = 0.0
        for t in tensors { for j in 0..<t.count { let v = Double(t.pointer[j]); total += v * v } }
        return total
    }

    public func rowMeanLoss(_ x: Tensor, target: Tensor, _ loss: PointwiseLoss) -> [Double] {
        let n = x.shape[0], per = x.count / Swift.max(n, 1)
        return (0..<n).map { i in
            var acc = 0.0
            for j in 0..<per { acc += loss.value(Double(x.pointer[i * per + j] - target.pointer[i * per + j])) }
            return acc / Double(per)
        }
    }
}

// MARK: - Layout

extension ReferenceBackend {
    public func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
        let outShape = order.map { x.shape[$0] }
        let inStrides = contiguousStrides(x.shape)
        // The input seen in output order: a "broadcast" with the permuted strides.
        let out = Tensor.uninitialized(outShape)
        let p = x.pointer, o = out.pointer
        var index = [Int](repeating: 0, count: outShape.count)
        for i in 0..<out.count {
            var off = 0
            for d in 0..<outShape.count { off += index[d] * inStrides[order[d]] }
            o[i] = p[off]
            var d = outShape.count - 1
            while d >= 0 { index[d] += 1; if index[d] < outShape[d] { break }; index[d] = 0; d -= 1 }
        }
        return out
    }

    public func slice(_ x: Tensor, axis: Int, _ range: Range<Int>) -> Tensor {
        var outShape = x.shape; outShape[axis] = range.count
        let inner = x.shape[(axis + 1)...].reduce(1, *), p = x.pointer
        return generated(outShape) { i in
            let o = i / (range.count * inner), j = (i / inner) % range.count, k = i % inner
            return p[(o * x.shape[axis] + range.lowerBound + j) * inner + k]
        }
    }

    public func pad(_ x: Tensor, axis: Int, before: Int, after: Int, value: Float) -> Tensor {
        var outShape = x.shape; outShape[axis] += before + after
        let inner = x.shape[(axis + 1)...].reduce(1, *), p = x.pointer, n = x.shape[axis]
        return generated(outShape) { i in
            let o = i / (outShape[axis] * inner), j = (i / inner) % outShape[axis] - before, k = i % inner
            return j >= 0 && j < n ? p[(o * n + j) * inner + k] : value
        }
    }

    public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        var outShape = tensors[0].shape
        outShape[axis] = tensors.map { $0.shape[axis] }.reduce(0, +)
        let inner = outShape[(axis + 1)...].reduce(1, *)
        // The tensor and position along the axis of each output position.
        var owner: [(Int, Int)] = []
        for (t, x) in tensors.enumerated() { for j in 0..<x.shape[axis] { owner.append((t, j)) } }
        return generated(outShape) { i in
            let o = i / (outShape[axis] * inner), (t, j) = owner[(i / inner) % outShape[axis]], k = i % inner
            let x = tensors[t]
            return x.pointer[(o * x.shape[axis] + j) * inner + k]
        }
    }

    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let p = x.pointer, o = out.pointer
        forEachBroadcast(shape, [x.shape]) { i, off in o[i] = p[off[0]] }
        return out
    }

    public func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor {
        let per = x.shape.dropFirst().reduce(1, *), p = x.pointer
        return generated([rows.count] + Array(x.shape.dropFirst())) { i in p[rows[i / Swift.max(per, 1)] * per + i % Swift.max(per, 1)] }
    }

    public func scatterAddRows(_ gradient: Tensor, _ rows: [Int], count: Int) -> Tensor {
        let per = gradient.shape.dropFirst().reduce(1, *)
        var acc = [Double](repeating: 0, count: count * per)
        for (t, r) in rows.enumerated() { for j in 0..<per { acc[r * per + j] += Double(gradient.pointer[t * per + j]) } }
        return Tensor(shape: [count] + Array(gradient.shape.dropFirst()), acc.map { Float($0) })
    }

    public func replaceRows(_ x: Tensor, _ rows: [Int], with values: Tensor) -> Tensor {
        let per = x.shape.dropFirst().reduce(1, *)
        var source = [Int](repeating: -1, count: x.shape[0])
        for (i, r) in rows.enumerated() { source[r] = i }
        return generated(x.shape) { i in
            let r = i / Swift.max(per, 1), j = i % Swift.max(per, 1)
            return source[r] >= 0 ? values.pointer[source[r] * per + j] : x.pointer[i]
        }
    }
}

// MARK: - Products and images

extension ReferenceBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        Reference.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let rows = x.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        let px = x.pointer, pw = weight.pointer
        return generated([rows, outF]) { i in
            let r = i / outF, o = i % outF
            var acc = Double(bias?.pointer[o] ?? 0)
            for k in 0..<inF { acc += Double(px[r * inF + k]) * Double(pw[o * inF + k]) }
            return Float(acc)
        }
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: Conv2dGeometry,
                       algorithm: Conv2dAlgorithm) -> Tensor {
        Reference.conv2d(x, weight, bias: bias, geometry)
    }

    public func conv2dBackward(gradient: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                               algorithm: Conv2dAlgorithm, needInput: Bool, needWeight: Bool) -> (input: Tensor?, weight: Tensor?) {
        (needInput ? Reference.conv2dBackwardInput(gradient, weight, geometry) : nil,
         needWeight ? Reference.conv2dBackwardWeight(gradient, input, geometry) : nil)
    }

    public func conv2dBiasGradient(_ gradient: Tensor) -> Tensor { Reference.conv2dBackwardBias(gradient) }

    public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        Reference.avgPool2d(x, kernel: kernel, stride: stride)
    }

    public func avgPool2dBackward(gradient: Tensor, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        Reference.avgPool2dBackward(gradient, inputShape: inputShape, kernel: kernel, stride: stride)
    }

    public func upsampleNearest(_ x: Tensor, scale: (Int, Int)) -> Tensor { Reference.upsampleNearest(x, scale: scale) }

    public func upsampleNearestBackward(gradient: Tensor, scale: (Int, Int)) -> Tensor {
        Reference.upsampleNearestBackward(gradient, scale: scale)
    }

    /// Calls term(outputIndex, inputIndex, filterIndex) for every product of a depthwise
    /// correlation of x's [h, w] planes into [ho, wo] ones (positions outside skipped).
    private static func forEachDepthwiseTerm(planes: Int, h: Int, w: Int, ho: Int, wo: Int, kh: Int, kw: Int,
                                             stride s: Int, padding p: Int, _ term: (Int, Int, Int) -> Void) {
        for plane in 0..<planes { for oy in 0..<ho { for ox in 0..<wo { for ky in 0..<kh { for kx in 0..<kw {
            let iy = oy * s - p + ky, ix = ox * s - p + kx
            if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
            term((plane * ho + oy) * wo + ox, (plane * h + iy) * w + ix, ky * kw + kx)
        } } } } }
    }

    public func depthwiseCorrelate(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        let (ho, wo) = outputSize, px = x.pointer, pf = filter.pointer
        var acc = [Double](repeating: 0, count: x.shape[0] * x.shape[1] * ho * wo)
        ReferenceBackend.forEachDepthwiseTerm(planes: x.shape[0] * x.shape[1], h: x.shape[2], w: x.shape[3], ho: ho, wo: wo,
                                              kh: filter.shape[0], kw: filter.shape[1], stride: stride, padding: padding) { o, i, f in
            acc[o] += Double(pf[f]) * Double(px[i])
        }
        return Tensor(shape: [x.shape[0], x.shape[1], ho, wo], acc.map { Float($0) })
    }

    public func depthwiseScatter(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        // The transpose: x is on the correlation's output side, the result on its input side.
        let (h, w) = outputSize, px = x.pointer, pf = filter.pointer
        var acc = [Double](repeating: 0, count: x.shape[0] * x.shape[1] * h * w)
        ReferenceBackend.forEachDepthwiseTerm(planes: x.shape[0] * x.shape[1], h: h, w: w, ho: x.shape[2], wo: x.shape[3],
                                              kh: filter.shape[0], kw: filter.shape[1], stride: stride, padding: padding) { o, i, f in
            acc[i] += Double(pf[f]) * Double(px[o])
        }
        return Tensor(shape: [x.shape[0], x.shape[1], h, w], acc.map { Float($0) })
    }
}

// MARK: - Fused layers, composed

extension ReferenceBackend {
    private static func groupNormComposed(_ xs: [Tensor?], groups: Int, eps: Float, silu: Bool) -> Tensor {
        silu ? Reference.groupNormSiLU(xs[0]!, groups: groups, weight: xs[1], bias: xs[2], eps: eps)
             : Reference.groupNorm(xs[0]!, groups: groups, weight: xs[1], bias: xs[2], eps: eps)
    }

    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool)
        -> (output: Tensor, saved: AnyObject?) {
        (Autograd.noGrad { ReferenceBackend.groupNormComposed([x, weight, bias], groups: groups, eps: eps, silu: silu) }, nil)
    }

    public func groupNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, groups: Int, weight: Tensor?, bias: Tensor?,
                                  eps: Float, silu: Bool, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        let g = vectorJacobianProduct([input, weight, bias], gradient: gradient) {
            ReferenceBackend.groupNormComposed($0, groups: groups, eps: eps, silu: silu)
        }
        return (needs.input ? g[0] : nil, needs.weight ? g[1] : nil, needs.bias ? g[2] : nil)
    }

    /// Layer norm of x seen as [rows, d] with [d] weight and bias.
    private static func layerNormComposed(_ xs: [Tensor?], d: Int, eps: Float) -> Tensor {
        let x = xs[0]!
        let rows = d == 0 ? 0 : x.count / d
        return Reference.layerNorm(x.reshaped([rows, d]), normalizedShape: [d], weight: xs[1]?.reshaped([d]),
                                      bias: xs[2]?.reshaped([d]), eps: eps).reshaped(x.shape)
    }

    public func layerNorm(_ x: Tensor, normalizedCount d: Int, weight: Tensor?, bias: Tensor?, eps: Float)
        -> (output: Tensor, saved: AnyObject?) {
        (Autograd.noGrad { ReferenceBackend.layerNormComposed([x, weight, bias], d: d, eps: eps) }, nil)
    }

    public func layerNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, normalizedCount d: Int, weight: Tensor?,
                                  bias: Tensor?, eps: Float, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        let g = vectorJacobianProduct([input, weight, bias], gradient: gradient) {
            ReferenceBackend.layerNormComposed($0, d: d, eps: eps)
        }
        return (needs.input ? g[0] : nil, needs.weight ? g[1] : nil, needs.bias ? g[2] : nil)
    }

    public func softmax(_ x: Tensor, _ L: ReductionLayout, log: Bool) -> Tensor {
        Autograd.noGrad {
            let v = x.reshaped([L.outer, L.reduced, L.inner])
            return (log ? Reference.logSoftmax(v, axis: 1) : Reference.softmax(v, axis: 1)).reshaped(x.shape)
        }
    }

    /// From the output alone (as the CPU kernel): softmax gx = y (g - sum(g y)); log-softmax
    /// gx = g - exp(y) sum(g), the sums over the softmax axis in Float64.
    public func softmaxBackward(gradient: Tensor, output: Tensor, _ L: ReductionLayout, log: Bool) -> Tensor {
        let g = gradient.pointer, y = output.pointer
        func at(_ o: Int, _ j: Int, _ i: Int) -> Int { (o * L.reduced + j) * L.inner + i }
        var sums = [Double](repeating: 0, count: L.outer * L.inner)
        for o in 0..<L.outer { for i in 0..<L.inner { for j in 0..<L.reduced {
            let k = at(o, j, i)
            sums[o * L.inner + i] += log ? Double(g[k]) : Double(g[k]) * Double(y[k])
        } } }
        return generated(output.shape) { k in
            let o = k / (L.reduced * L.inner), i = k % L.inner
            let s = sums[o * L.inner + i]
            return log ? Float(Double(g[k]) - Foundation.exp(Double(y[k])) * s) : Float(Double(y[k]) * (Double(g[k]) - s))
        }
    }

    private static func attentionComposed(_ xs: [Tensor?], scale: Float, causal: Bool) -> Tensor {
        Reference.scaledDotProductAttention(query: xs[0]!, key: xs[1]!, value: xs[2]!, attentionMask: xs[3],
                                               causal: causal, scale: scale)
    }

    public func attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor?, shape: AttentionShape,
                          scale: Float, causal: Bool, keepForBackward: Bool) -> (output: Tensor, saved: AnyObject?) {
        (Autograd.noGrad { ReferenceBackend.attentionComposed([query, key, value, mask], scale: scale, causal: causal) }, nil)
    }

    public func attentionBackward(gradient: Tensor, query: Tensor, key: Tensor, value: Tensor, mask: Tensor?,
                                  output: Tensor, saved: AnyObject?, shape: AttentionShape, scale: Float, causal: Bool,
                                  needs: AttentionGradientNeeds) -> (query: Tensor?, key: Tensor?, value: Tensor?, mask: Tensor?) {
        let g = vectorJacobianProduct([query, key, value, mask], gradient: gradient) {
            ReferenceBackend.attentionComposed($0, scale: scale, causal: causal)
        }
        return (needs.query ? g[0] : nil, needs.key ? g[1] : nil, needs.value ? g[2] : nil, needs.mask ? g[3] : nil)
    }
}

// MARK: - Random numbers, element by element

extension ReferenceBackend {
    /// Word `i % 4` of block `i / 4` of `generator` (the packed layout).
    private static func packedWord(_ generator: RandomGenerator, _ i: Int) -> UInt32 {
        generator.block(at: UInt64(i / 4))[i % 4]
    }

    public func dropout(_ x: Tensor, generator: RandomGenerator, keep: Float, scale: Float) -> Tensor {
        let p = x.pointer
        return generated(x.shape) { i in
            RandomGenerator.unitFloat(ReferenceBackend.packedWord(generator, i)) < keep ? p[i] * scale : 0
        }
    }

    public func randomUniform(_ shape: [Int], low: Float, high: Float, generator: RandomGenerator,
                              layout: RandomLayout) -> Tensor {
        generated(shape) { i in
            let word = layout == .packed ? ReferenceBackend.packedWord(generator, i) : generator.block(at: UInt64(i))[0]
            return RandomGenerator.uniformFloat(word, low: low, high: high)
        }
    }

    public func randomNormal(_ shape: [Int], mean: Float, std: Float, generator: RandomGenerator) -> Tensor {
        generated(shape) { i in
            let b = generator.block(at: UInt64(i / 4))
            let pair = i % 4 < 2 ? RandomGenerator.normalPair(b[0], b[1]) : RandomGenerator.normalPair(b[2], b[3])
            let z = i % 2 == 0 ? pair.0 : pair.1
            return mean == 0 && std == 1 ? z : mean + std * z
        }
    }

    /// Lemire's multiply-shift with rejection on the word pair (2h, 2h+1) of block i / 2, h = i % 2;
    /// a rejected candidate takes the same pair of Philox(key, the previous block as counter).
    public func randomIntegers(_ shape: [Int], upperBound: Int, generator: RandomGenerator) -> Tensor {
        let n = UInt64(upperBound), philox = generator.philox
        let threshold = (0 &- n) % n
        return generated(shape) { i in
            var block = generator.block(at: UInt64(i / 2))
            let h = i % 2
            while true {
                let x = UInt64(block[2 * h]) | UInt64(block[2 * h + 1]) << 32
                let m = x.multipliedFullWidth(by: n)
                if m.low >= threshold { return Float(m.high) }
                block = philox.block(counter: block)
            }
        }
    }
}

// MARK: - Conversions and in-place updates

extension ReferenceBackend {
    public func decode(_ bytes: UnsafeRawBufferPointer, format: ScalarFormat, shape: [Int]) -> Tensor {
        func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
        return generated(shape) { i in
            switch format {
            case .float32: return Float(bitPattern: load(i, UInt32.self))
            case .float16: return HalfPrecision.float(fromFloat16Bits: load(i, UInt16.self))
            case .bfloat16: return HalfPrecision.float(fromBFloat16Bits: load(i, UInt16.self))
            case .float64: return Float(Double(bitPattern: load(i, UInt64.self)))
            case .bool: return load(i, UInt8.self) != 0 ? 1 : 0
            case .uint8: return Float(load(i, UInt8.self))
            case .int8: return Float(load(i, Int8.self))
            case .int16: return Float(load(i, Int16.self))
            case .uint16: return Float(load(i, UInt16.self))
            case .int32: return Float(load(i, Int32.self))
            case .uint32: return Float(load(i, UInt32.self))
            case .int64: return Float(load(i, Int64.self))
            case .uint64: return Float(load(i, UInt64.self))
            }
        }
    }

    public func expandHalf(_ half: HalfTensor) -> Tensor {
        Tensor(shape: half.shape, Reference.expandHalf(half.bitPatterns, format: half.format))
    }

    public func expandHalfRows(_ half: HalfTensor, _ rows: [Int]) -> Tensor {
        let dim = half.shape[1]
        let bits = rows.flatMap { r in (0..<dim).map { half.bits[r * dim + $0] } }
        return Tensor(shape: [rows.count, dim], Reference.expandHalf(bits, format: half.format))
    }

    public func roundHalf(_ x: Tensor, into half: HalfTensor) {
        for (i, b) in Reference.roundHalf(x.scalars, format: half.format).enumerated() { half.bits[i] = b }
    }

    public func copy(_ x: Tensor) -> Tensor {
        let p = x.pointer
        return generated(x.shape) { p[$0] }
    }

    public func assign(_ source: Tensor, to destination: Tensor) {
        for i in 0..<destination.count { destination.pointer[i] = source.pointer[i] }
    }

    public func scaleAndAdd(_ x: Tensor, _ a: Float, _ y: Tensor, _ b: Float) {
        for i in 0..<x.count { x.pointer[i] = a * x.pointer[i] + b * y.pointer[i] }
    }

    public func adamW(parameter p: Tensor, gradient g: Tensor, firstMoment m: Tensor, secondMoment v: Tensor, _ s: AdamWStep) {
        for j in 0..<p.count {
            let gj = g.pointer[j]
            let mj = s.beta1 * m.pointer[j] + (1 - s.beta1) * gj
            let vj = s.beta2 * v.pointer[j] + (1 - s.beta2) * gj * gj
            m.pointer[j] = mj
            v.pointer[j] = vj
            p.pointer[j] = p.pointer[j] * s.decay - s.stepSize * mj / (vj.squareRoot() / s.secondMomentCorrectionRoot + s.eps)
        }
    }
}
