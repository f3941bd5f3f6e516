import Foundation

/// A reduction laid out as [outer, reduced, inner] over a contiguous tensor.
struct ReductionLayout {
    let outer: Int, reduced: Int, inner: Int
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
    func reductionInput(_ axes: [Int]) -> (Tensor, ReductionLayout) {
        var kept = shape, dropped: [Int] = []
        for a in axes { kept[a] = 1 }
        for i in 0..<rank where !axes.contains(i) { dropped.append(shape[i]) }
        let contiguous = axes.isEmpty || axes.last! - axes.first! + 1 == axes.count
        if contiguous {
            let first = axes.first ?? rank, last = axes.last ?? (rank - 1)
            let outer = shape[..<first].reduce(1, *)
            let reduced = axes.isEmpty ? 1 : shape[first...last].reduce(1, *)
            let inner = last + 1 < rank ? shape[(last + 1)...].reduce(1, *) : 1
            return (self, ReductionLayout(outer: outer, reduced: reduced, inner: inner,
                                          keptShape: kept, droppedShape: dropped))
        }
        let rest = (0..<rank).filter { !axes.contains($0) }
        let moved = Autograd.noGrad { permuted(rest + axes) }
        let reduced = axes.map { shape[$0] }.reduce(1, *)
        return (moved, ReductionLayout(outer: moved.count / Swift.max(reduced, 1), reduced: reduced, inner: 1,
                                       keptShape: kept, droppedShape: dropped))
    }

    /// Sum over `axes` (all when nil or empty).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "sum")
        let (src, L) = reductionInput(ax)
        let out = Tensor.uninitialized(keepDims ? L.keptShape : L.droppedShape)
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
        let input = self, keptShape = L.keptShape
        return out.recorded("sum", [input]) { g in
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
        let (src, L) = reductionInput(ax)
        let out = Tensor.uninitialized(keepDims ? L.keptShape : L.droppedShape)
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
        let input = self, keptShape = L.keptShape
        return out.recorded(op, [input]) { [unowned out] g in
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
        let (src, L) = reductionInput([ax])
        let out = Tensor.uninitialized(keepDims ? L.keptShape : L.droppedShape)
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

    /// log(sum(exp(x))) over `axes`, computed stably.
    public func logSumExp(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "logsumexp")
        let m = Autograd.noGrad { max(axes: ax, keepDims: true) }
        let shifted = (self - m).exp().sum(axes: ax, keepDims: true).log() + m
        return keepDims ? shifted : shifted.reshaped(shifted.shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
    }
}
