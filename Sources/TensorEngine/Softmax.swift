import Foundation

// Fused softmax and log-softmax along any axis, with hand-written backward passes.
//
// The tensor is seen as [outer, n, inner] with n the softmax axis. The last axis (inner == 1) is
// the fast path: one row at a time, max, exp and sum in vectorised loops. Other axes work on
// blocks of up to 256 adjacent columns, so the inner loops still run over contiguous memory.
// Work is split into fixed chunks of rows or column blocks, and each row's reductions run in a
// fixed order, so results are identical for every `Engine.threads`.

extension Tensor {
    /// Softmax along `axis`: exp(x - max) / sum(exp(x - max)), computed stably in one fused pass
    /// per row. Matches `torch.softmax(x, dim=axis)` for Float32 (to a few ulp: exp is a
    /// polynomial, sums are Float). Like PyTorch, a row that is all -inf (or holds NaN or +inf)
    /// gives NaN. A 0-d tensor gives 1.
    public func softmax(axis: Int = -1) -> Tensor { fusedSoftmax(axis: axis, log: false) }

    /// Log-softmax along `axis`: (x - max) - log(sum(exp(x - max))), stable for any magnitudes.
    /// Matches `torch.log_softmax(x, dim=axis)` for Float32 (to a few ulp); an all -inf row gives
    /// NaN, as in PyTorch.
    public func logSoftmax(axis: Int = -1) -> Tensor { fusedSoftmax(axis: axis, log: true) }

    private func fusedSoftmax(axis a: Int, log: Bool) -> Tensor {
        let name = log ? "log_softmax" : "softmax"
        precondition(rank > 0 || a == 0 || a == -1, "\(name): axis \(a) out of range for a 0-d tensor")
        let ax = rank == 0 ? 0 : axis(a, op: name)
        let n = rank == 0 ? 1 : shape[ax]
        let outer = rank == 0 ? 1 : shape[..<ax].reduce(1, *)
        let inner = rank == 0 ? 1 : shape[(ax + 1)...].reduce(1, *)
        let layout = ReductionLayout(outer: outer, reduced: n, inner: inner)
        let out = Engine.backend.softmax(self, layout, log: log).viewed(shape)
        let x = self
        return out.recorded(name, [x], backward: { [unowned out] g in
            [Engine.backend.softmaxBackward(gradient: g, output: out, layout, log: log)]
        }, differentiableBackward: { [unowned out] g in
            // softmax: y (g - sum(g y)); log-softmax: g - exp(y) sum(g), over the softmax axis.
            let shape3 = [layout.outer, layout.reduced, layout.inner]
            let y = out.reshaped(shape3), g3 = g.reshaped(shape3)
            let gx = log ? g3 - y.exp() * g3.sum(axes: [1], keepDims: true)
                         : y * (g3 - (g3 * y).sum(axes: [1], keepDims: true))
            return [gx.reshaped(x.shape)]
        })
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func softmax(_ x: Tensor, _ L: ReductionLayout, log: Bool) -> Tensor {
        let out = Tensor.uninitialized(x.shape)
        softmaxForward(x.pointer, out.pointer, outer: L.outer, n: L.reduced, inner: L.inner, log: log)
        return out
    }

    public func softmaxBackward(gradient: Tensor, output: Tensor, _ L: ReductionLayout, log: Bool) -> Tensor {
        TensorEngine.softmaxBackward(gradient, output: output, outer: L.outer, n: L.reduced, inner: L.inner, log: log)
    }
}

/// Softmax (or log-softmax) of one contiguous row of length n >= 1. `y` may not alias `x`.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, log: Bool) {
    let m = maxFloat(x, n)
    for j in 0..<n { y[j] = fastExp(x[j] - m) }
    let s = sumFloat(y, n)
    if log {
        let ls = Foundation.log(s)
        for j in 0..<n { y[j] = (x[j] - m) - ls }
    } else {
        let inv = 1 / s
        for j in 0..<n { y[j] *= inv }
    }
}

/// Forward kernel over [outer, n, inner].
func softmaxForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    outer: Int, n: Int, inner: Int, log: Bool) {
    if outer == 0 || n == 0 || inner == 0 { return }
    if inner == 1 {
        parallelFor(outer, grain: rowGrain(n)) { rows in
            for r in rows { softmaxRow(x + r * n, y + r * n, n, log: log) }
        }
        return
    }
    let block = Swift.min(inner, 256)
    let blocksPerOuter = (inner + block - 1) / block
    parallelFor(outer * blocksPerOuter, grain: rowGrain(n * block)) { units in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * block) { scratch in
            let m = scratch.baseAddress!, s = m + block
            for u in units {
                let o = u / blocksPerOuter, i0 = (u % blocksPerOuter) * block
                let w = Swift.min(block, inner - i0)
                let xb = x + o * n * inner + i0, yb = y + o * n * inner + i0
                for i in 0..<w { m[i] = xb[i]; s[i] = 0 }
                for j in 1..<n {
                    let xr = xb + j * inner
                    for i in 0..<w { m[i] = xr[i] > m[i] ? xr[i] : m[i] }
                }
                for j in 0..<n {
                    let xr = xb + j * inner, yr = yb + j * inner
                    for i in 0..<w {
                        let e = fastExp(xr[i] - m[i])
                        yr[i] = e
                        s[i] += e
                    }
                }
                if log {
                    for i in 0..<w { s[i] = Foundation.log(s[i]) }
                    for j in 0..<n {
                        let xr = xb + j * inner, yr = yb + j * inner
                        for i in 0..<w { yr[i] = (xr[i] - m[i]) - s[i] }
                    }
                } else {
                    for i in 0..<w { s[i] = 1 / s[i] }
                    for j in 0..<n {
                        let yr = yb + j * inner
                        for i in 0..<w { yr[i] *= s[i] }
                    }
                }
            }
        }
    }
}

/// Backward kernel: softmax gx = y * (g - sum(g * y)); log-softmax gx = g - exp(y) * sum(g),
/// sums along the softmax axis.
func softmaxBackward(_ grad: Tensor, output: Tensor, outer: Int, n: Int, inner: Int, log: Bool) -> Tensor {
    let gx = Tensor.uninitialized(output.shape)
    if output.count == 0 { return gx }
    let g = grad.pointer, y = output.pointer, d = gx.pointer
    if inner == 1 {
        parallelFor(outer, grain: rowGrain(n)) { rows in
            for r in rows {
                let gr = g + r * n, yr = y + r * n, dr = d + r * n
                if log {
                    let s = sumFloat(gr, n)
                    for j in 0..<n { dr[j] = gr[j] - fastExp(yr[j]) * s }
                } else {
                    let s = dotFloat(gr, yr, n)
                    for j in 0..<n { dr[j] = yr[j] * (gr[j] - s) }
                }
            }
        }
        return gx
    }
    let block = Swift.min(inner, 256)
    let blocksPerOuter = (inner + block - 1) / block
    parallelFor(outer * blocksPerOuter, grain: rowGrain(n * block)) { units in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { scratch in
            let s = scratch.baseAddress!
            for u in units {
                let o = u / blocksPerOuter, i0 = (u % blocksPerOuter) * block
                let w = Swift.min(block, inner - i0)
                let base = o * n * inner + i0
                for i in 0..<w { s[i] = 0 }
                for j in 0..<n {
                    let gr = g + base + j * inner, yr = y + base + j * inner
                    if log { for i in 0..<w { s[i] += gr[i] } } else { for i in 0..<w { s[i] += gr[i] * yr[i] } }
                }
                for j in 0..<n {
                    let gr = g + base + j * inner, yr = y + base + j * inner, dr = d + base + j * inner
                    if log { for i in 0..<w { dr[i] = gr[i] - fastExp(yr[i]) * s[i] } }
                    else { for i in 0..<w { dr[i] = yr[i] * (gr[i] - s[i]) } }
                }
            }
        }
    }
    return gx
}
