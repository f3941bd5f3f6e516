import Foundation

// Loops shared by the elementwise ops. The closure forms are internal and `@inline(__always)`;
// whether the closure then reaches the loop inlined is up to the optimizer (for the binary
// kernels it did not: see `BinaryKernelOp`, the form the hot ops use).

/// out[i] = f(x[i]).
@inline(__always)
func mapKernel(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let out = Tensor.uninitialized(x.shape)
    let src = x.pointer, dst = out.pointer
    parallelFor(x.count) { r in
        for i in r { dst[i] = f(src[i]) }
    }
    return out
}

/// out[i] = f(a[i], b[i]) for tensors of equal size; f is called per element (see
/// `BinaryKernelOp` for the fast path).
@inline(__always)
func zipKernel(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    withoutActuallyEscaping(f) { zipKernel(a, b, ClosureKernelOp(f: $0)) }
}

/// out[i] = f(a[i], b[i], c[i]) for tensors of equal size.
@inline(__always)
func zip3Kernel(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
    precondition(a.count == b.count && b.count == c.count,
                 "elementwise: sizes \(a.shape), \(b.shape) and \(c.shape) differ")
    let out = Tensor.uninitialized(a.shape)
    let pa = a.pointer, pb = b.pointer, pc = c.pointer, dst = out.pointer
    parallelFor(a.count) { r in
        for i in r { dst[i] = f(pa[i], pb[i], pc[i]) }
    }
    return out
}

/// out = f(a, b) with broadcasting; f is called per element (see `BinaryKernelOp`).
@inline(__always)
func broadcastKernel(_ a: Tensor, _ b: Tensor, op: String, _ f: (Float, Float) -> Float) -> Tensor {
    withoutActuallyEscaping(f) { broadcastKernel(a, b, op: op, ClosureKernelOp(f: $0)) }
}

/// A binary elementwise op as a value whose type says what it does. The kernels below are generic
/// over it, so each op type gets its own loop with the op inlined: `+`, `-`, `*`, `/` use
/// `AddKernelOp`... A closure (`ClosureKernelOp`, what the closure forms of `zipKernel` and
/// `broadcastKernel` pass) is called per element once the loop body is handed to `parallelFor`
/// (perf on the U-Net: 7.5% of the forward went to the adds' closure calls and loop); those forms
/// serve the rarer ops and are the plain reference the op types are tested against
/// (`ElementwiseKernelTests`: bit for bit).
protocol BinaryKernelOp { func apply(_ a: Float, _ b: Float) -> Float }
struct AddKernelOp: BinaryKernelOp { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a + b } }
struct SubKernelOp: BinaryKernelOp { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a - b } }
struct MulKernelOp: BinaryKernelOp { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a * b } }
struct DivKernelOp: BinaryKernelOp { @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { a / b } }
struct ClosureKernelOp: BinaryKernelOp {
    let f: (Float, Float) -> Float
    @inline(__always) func apply(_ a: Float, _ b: Float) -> Float { f(a, b) }
}

/// out[i] = op(a[i], b[i]) for tensors of equal size.
func zipKernel<Op: BinaryKernelOp>(_ a: Tensor, _ b: Tensor, _ op: Op) -> Tensor {
    precondition(a.count == b.count, "elementwise: sizes \(a.shape) and \(b.shape) differ")
    let out = Tensor.uninitialized(a.shape)
    let pa = a.pointer, pb = b.pointer, dst = out.pointer
    parallelFor(a.count) { r in
        for i in r { dst[i] = op.apply(pa[i], pb[i]) }
    }
    return out
}

/// out = op(a, b) with broadcasting (`name` for shape errors).
func broadcastKernel<Op: BinaryKernelOp>(_ a: Tensor, _ b: Tensor, op name: String, _ op: Op) -> Tensor {
    if a.shape == b.shape { return zipKernel(a, b, op) }
    let outShape = broadcastShape(a.shape, b.shape, op: name)
    let out = Tensor.uninitialized(outShape)
    if out.count == 0 { return out }
    let plan = BroadcastPlan(outShape: outShape, a: a.shape, b: b.shape)
    let dims = plan.dims, stA = plan.stridesA, stB = plan.stridesB
    let inner = dims[dims.count - 1]
    let innerA = stA[stA.count - 1], innerB = stB[stB.count - 1]
    let outer = out.count / inner
    let pa = a.pointer, pb = b.pointer, dst = out.pointer
    parallelFor(outer, grain: Swift.max(1, 32768 / inner)) { rows in
        for row in rows {
            var rem = row, offA = 0, offB = 0
            var d = dims.count - 2
            while d >= 0 {
                let i = rem % dims[d]
                rem /= dims[d]
                offA += i * stA[d]
                offB += i * stB[d]
                d -= 1
            }
            let o = dst + row * inner, x = pa + offA, y = pb + offB
            if innerA == 1 && innerB == 1 {
                for j in 0..<inner { o[j] = op.apply(x[j], y[j]) }
            } else if innerA == 1 {
                let v = y[0]
                for j in 0..<inner { o[j] = op.apply(x[j], v) }
            } else if innerB == 1 {
                let v = x[0]
                for j in 0..<inner { o[j] = op.apply(v, y[j]) }
            } else {
                let v = op.apply(x[0], y[0])
                for j in 0..<inner { o[j] = v }
            }
        }
    }
    return out
}

/// tanh through exp (glibc's tanhf is ~3x slower); odd polynomial near 0 to keep relative accuracy.
@inline(__always)
func fastTanh(_ x: Float) -> Float {
    let ax = Swift.abs(x)
    if ax < 0.0625 {
        let x2 = x * x
        return x * (1 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))))
    }
    if ax > 9 { return x > 0 ? 1 : -1 }
    let e = Foundation.exp(2 * ax)
    let t = 1 - 2 / (e + 1)
    return x < 0 ? -t : t
}

@inline(__always)
func sigmoidScalar(_ x: Float) -> Float {
    if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
    let e = Foundation.exp(x)
    return e / (1 + e)
}

@inline(__always)
func softplusScalar(_ x: Float) -> Float {
    // log(1 + e^x), stable for large |x| (PyTorch's default threshold 20).
    if x > 20 { return x }
    if x < -20 { return Foundation.exp(x) }
    return Foundation.log1p(Foundation.exp(x))
}
