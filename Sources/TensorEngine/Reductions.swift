import Foundation

/// Where a reduction over some axes of a contiguous tensor puts its result.
struct ReductionShapes {
    let layout: ReductionLayout
    let keptShape: [Int]     // the result's shape with keepDims
    let droppedShape: [Int]  // the result's shape without
}

extension Tensor {
    /// Normalises `axes` (negative allowed; empty means all), sorted and unique.
    func reductionAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes, !axes.isEmpty else { return Array(0..<rank) }
        let normalized = Set(axes.map { axis($0, op: op) })
        precondition(normalized.count == axes.count, "\(op): repeated axis in \(axes) for shape \(shape)")
        return normalized.sorted()
    }

    /// Brings the reduced axes together at the end when they are not already one contiguous block,
    /// and returns the tensor to reduce with its layout.
    func reductionInput(_ axes: [Int]) -> (Tensor, ReductionShapes) {
        var kept = shape, dropped: [Int] = []
        for a in axes { kept[a] = 1 }
        for i in 0..<rank where !axes.contains(i) { dropped.append(shape[i]) }
        let contiguous = axes.isEmpty || axes.last! - axes.first! + 1 == axes.count
        if contiguous {
            let first = axes.first ?? rank, last = axes.last ?? (rank - 1)
            let outer = shape[..<first].reduce(1, *)
            let reduced = axes.isEmpty ? 1 : shape[first...last].reduce(1, *)
            let inner = last + 1 < rank ? shape[(last + 1)...].reduce(1, *) : 1
            return (self, ReductionShapes(layout: ReductionLayout(outer: outer, reduced: reduced, inner: inner),
                                          keptShape: kept, droppedShape: dropped))
        }
        let rest = (0..<rank).filter { !axes.contains($0) }
        let moved = Autograd.noGrad { permuted(rest + axes) }
        let reduced = axes.map { shape[$0] }.reduce(1, *)
        let layout = ReductionLayout(outer: moved.count / Swift.max(reduced, 1), reduced: reduced, inner: 1)
        return (moved, ReductionShapes(layout: layout, keptShape: kept, droppedShape: dropped))
    }

    /// Sum over `axes` (all when nil or empty), accumulated in Float64 on the CPU backend.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "sum")
        let (src, R) = reductionInput(ax)
        let out = Engine.backend.sum(src, R.layout).reshaped(keepDims ? R.keptShape : R.droppedShape)
        let input = self, keptShape = R.keptShape
        return out.recordedComposed("sum", [input]) { g in
            [g.reshaped(keptShape).expanded(to: input.shape)]
        }
    }

    /// Mean over `axes` (all when nil or empty).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "mean")
        let n = ax.map { shape[$0] }.reduce(1, *)
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Variance over `axes` with `correction` subtracted from the count (1 = unbiased, PyTorch's
    /// default; 0 = population variance as normalisation layers use).
    public func variance(axes: [Int]? = nil, keepDims: Bool = false, correction: Int = 1) -> Tensor {
        let ax = reductionAxes(axes, op: "var")
        let n = ax.map { shape[$0] }.reduce(1, *)
        let centered = self - mean(axes: ax, keepDims: true)
        return centered.square().sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n - correction, 1)))
    }

    /// Maximum over `axes`; the gradient is shared evenly among tied maxima (like `torch.amax`).
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extremum(axes: axes, keepDims: keepDims, op: "max", greater: true)
    }

    /// Minimum over `axes`; the gradient is shared evenly among tied minima (like `torch.amin`).
    public func min(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extremum(axes: axes, keepDims: keepDims, op: "min", greater: false)
    }

    private func extremum(axes: [Int]?, keepDims: Bool, op: String, greater: Bool) -> Tensor {
        let ax = reductionAxes(axes, op: op)
        precondition(count > 0, "\(op): empty tensor of shape \(shape)")
        let (src, R) = reductionInput(ax)
        let out = Engine.backend.extremum(src, R.layout, largest: greater).reshaped(keepDims ? R.keptShape : R.droppedShape)
        let input = self, keptShape = R.keptShape
        return out.recordedComposed(op, [input]) { [unowned out] g in
            let m = out.reshaped(keptShape)
            let hit = input.equal(m)
            let ties = hit.sum(axes: ax, keepDims: true)
            return [hit * (g.reshaped(keptShape) / ties)]
        }
    }

    /// Index of the largest value along `axis` (first on ties), as Float values.
    public func argmax(axis: Int, keepDims: Bool = false) -> Tensor { argExtremum(axis: axis, keepDims: keepDims, greater: true) }
    /// Index of the smallest value along `axis` (first on ties), as Float values.
    public func argmin(axis: Int, keepDims: Bool = false) -> Tensor { argExtremum(axis: axis, keepDims: keepDims, greater: false) }

    private func argExtremum(axis a: Int, keepDims: Bool, greater: Bool) -> Tensor {
        let ax = axis(a, op: greater ? "argmax" : "argmin")
        precondition(shape[ax] > 0, "argmax/argmin: empty axis \(ax) in shape \(shape)")
        let (src, R) = reductionInput([ax])
        return Engine.backend.argExtremum(src, R.layout, largest: greater).reshaped(keepDims ? R.keptShape : R.droppedShape)
    }

    /// log(sum(exp(x))) over `axes`, computed stably.
    public func logSumExp(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "logsumexp")
        let m = Autograd.noGrad { max(axes: ax, keepDims: true) }
        let shifted = (self - m).exp().sum(axes: ax, keepDims: true).log() + m
        return keepDims ? shifted : shifted.reshaped(shifted.shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
    }
}

extension Tensor {
    /// The sum of squares of every element of `tensors`, in order, accumulated in Float64 (for
    /// gradient norms). No history.
    public static func sumOfSquares(_ tensors: [Tensor]) -> Double {
        Engine.backend.sumOfSquares(tensors)
    }

    /// For self (a prediction) and `target` of equal shape [N, ...]: the mean of loss(self - target)
    /// over each of the N rows, the difference taken in Float and the loss and the sum in Float64
    /// in element order (like `F.mse_loss(p, t, reduction="none").mean(dims)` and its L1 and Huber
    /// siblings, more accurately). No history; the N values come back to the host.
    public func rowMeanLoss(target: Tensor, _ loss: PointwiseLoss) -> [Double] {
        precondition(shape == target.shape && rank >= 1,
                     "rowMeanLoss: prediction \(shape) and target \(target.shape) must have one shape of rank >= 1")
        return Engine.backend.rowMeanLoss(self, target: target, loss)
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func sum(_ src: Tensor, _ L: ReductionLayout) -> Tensor {
        let out = Tensor.uninitialized([L.outer * L.inner])
        let p = src.pointer, o = out.pointer
        let outer = L.outer, red = L.reduced, inner = L.inner
        if inner == 1 {
            parallelFor(outer, grain: Swift.max(1, 65536 / Swift.max(red, 1))) { rows in
                for r in rows {
                    // Double accumulation: long sums (losses over whole batches) stay accurate.
                    var acc: Double = 0
                    let row = p + r * red
                    for j in 0..<red { acc += Double(row[j]) }
                    o[r] = Float(acc)
                }
            }
        } else {
            parallelFor(outer, grain: Swift.max(1, 65536 / Swift.max(red * inner, 1))) { rows in
                for r in rows {
                    let dst = o + r * inner
                    dst.initialize(repeating: 0, count: inner)
                    for j in 0..<red {
                        let s = p + (r * red + j) * inner
                        for i in 0..<inner { dst[i] += s[i] }
                    }
                }
            }
        }
        return out
    }

    public func extremum(_ src: Tensor, _ L: ReductionLayout, largest greater: Bool) -> Tensor {
        let out = Tensor.uninitialized([L.outer * L.inner])
        let p = src.pointer, o = out.pointer
        let red = L.reduced, inner = L.inner
        parallelFor(L.outer, grain: Swift.max(1, 65536 / Swift.max(red * inner, 1))) { rows in
            for r in rows {
                let dst = o + r * inner
                let base = p + r * red * inner
                dst.update(from: base, count: inner)
                for j in 1..<Swift.max(red, 1) {
                    let s = base + j * inner
                    if greater { for i in 0..<inner where s[i] > dst[i] { dst[i] = s[i] } }
                    else { for i in 0..<inner where s[i] < dst[i] { dst[i] = s[i] } }
                }
            }
        }
        return out
    }

    public func argExtremum(_ src: Tensor, _ L: ReductionLayout, largest greater: Bool) -> Tensor {
        let out = Tensor.uninitialized([L.outer * L.inner])
        let p = src.pointer, o = out.pointer
        let red = L.reduced, inner = L.inner
        for r in 0..<L.outer {
            for i in 0..<inner {
                var best = p[r * red * inner + i], bestJ = 0
                for j in 1..<red {
                    let v = p[(r * red + j) * inner + i]
                    if greater ? (v > best) : (v < best) { best = v; bestJ = j }
                }
                o[r * inner + i] = Float(bestJ)
            }
        }
        return out
    }

    public func sumOfSquares(_ tensors: [Tensor]) -> Double {
        var total: Double = 0
        for t in tensors {
            let p = t.pointer
            for j in 0..<t.count { total += Double(p[j]) * Double(p[j]) }
        }
        return total
    }

    public func rowMeanLoss(_ x: Tensor, target: Tensor, _ loss: PointwiseLoss) -> [Double] {
        let n = x.shape[0], per = x.count / Swift.max(n, 1)
        let p = x.pointer, q = target.pointer
        var out = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var acc = 0.0
            let base = i * per
            for j in 0..<per { acc += loss.value(Double(p[base + j] - q[base + j])) }
            out[i] = acc / Double(per)
        }
        return out
    }
}
