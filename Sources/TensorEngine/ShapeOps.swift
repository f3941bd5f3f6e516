// Shape ops. `reshaped` shares storage (tensors are immutable); the others copy into a new
// contiguous tensor, which keeps every kernel free of stride handling.

extension Tensor {
    /// Same values in a new shape; one dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let hole = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            target[hole] = count / known
        }
        precondition(Tensor.elementCount(target) == count, "reshape: cannot reshape \(shape) (\(count) values) to \(newShape)")
        if target == shape { return self }
        let input = self
        return Tensor(shape: target, storage: storage).recorded("reshape", [input]) { g in [g.reshaped(input.shape)] }
    }

    /// Flattens dimensions from `start` on into one.
    public func flattened(from start: Int = 0) -> Tensor {
        let s = axis(start, op: "flatten")
        return reshaped(Array(shape[..<s]) + [shape[s...].reduce(1, *)])
    }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(_ a: Int) -> Tensor {
        let ax = a < 0 ? a + rank + 1 : a
        precondition(ax >= 0 && ax <= rank, "unsqueeze: axis \(a) out of range for shape \(shape)")
        var s = shape; s.insert(1, at: ax)
        return reshaped(s)
    }

    /// Removes a dimension of size 1 at `axis`.
    public func squeezed(_ a: Int) -> Tensor {
        let ax = axis(a, op: "squeeze")
        precondition(shape[ax] == 1, "squeeze: axis \(a) of shape \(shape) is not 1")
        var s = shape; s.remove(at: ax)
        return reshaped(s)
    }

    /// Reorders dimensions: result dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order) == Set(0..<rank),
                     "permute: \(order) is not a permutation of the \(rank) dimensions of \(shape)")
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let out = Tensor.uninitialized(outShape)
        // Input strides seen in output order.
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let st = order.map { inStrides[$0] }
        let inner = outShape[rank - 1], innerStride = st[rank - 1]
        let outer = count / Swift.max(inner, 1)
        let src = pointer, dst = out.pointer
        if count > 0 {
            parallelFor(outer, grain: Swift.max(1, 16384 / Swift.max(inner, 1))) { rows in
                for row in rows {
                    var rem = row, off = 0
                    var d = rank - 2
                    while d >= 0 { off += (rem % outShape[d]) * st[d]; rem /= outShape[d]; d -= 1 }
                    let o = dst + row * inner
                    let s = src + off
                    if innerStride == 1 { o.update(from: s, count: inner) }
                    else { for j in 0..<inner { o[j] = s[j * innerStride] } }
                }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        let input = self
        return out.recorded("permute", [input]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(axis(a, op: "transpose"), axis(b, op: "transpose"))
        return permuted(order)
    }

    /// Elements `range` along `axis` (a copy).
    public func sliced(axis a: Int, _ range: Range<Int>) -> Tensor {
        let ax = axis(a, op: "slice")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax],
                     "slice: range \(range) out of bounds for axis \(ax) of shape \(shape)")
        if range.count == shape[ax] { return self }
        var outShape = shape; outShape[ax] = range.count
        let out = Tensor.uninitialized(outShape)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let block = range.count * inner, srcRow = shape[ax] * inner, start = range.lowerBound * inner
        let src = pointer, dst = out.pointer
        for o in 0..<outer { (dst + o * block).update(from: src + o * srcRow + start, count: block) }
        let input = self
        return out.recorded("slice", [input]) { g in
            [g.padded(axis: ax, before: range.lowerBound, after: input.shape[ax] - range.upperBound)]
        }
    }

    /// Pads `axis` with `before` and `after` copies of `value`.
    public func padded(axis a: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = axis(a, op: "pad")
        precondition(before >= 0 && after >= 0, "pad: negative padding \(before), \(after)")
        if before == 0 && after == 0 { return self }
        var outShape = shape; outShape[ax] += before + after
        let out = Tensor(shape: outShape, repeating: value)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let block = shape[ax] * inner, dstRow = outShape[ax] * inner
        let src = pointer, dst = out.pointer
        for o in 0..<outer { (dst + o * dstRow + before * inner).update(from: src + o * block, count: block) }
        let input = self
        return out.recorded("pad", [input]) { g in [g.sliced(axis: ax, before..<(before + input.shape[ax]))] }
    }

    /// Pads several axes: `padding[i]` = (before, after) for dimension i (missing trailing = none).
    public func padded(_ padding: [(Int, Int)], value: Float = 0) -> Tensor {
        var t = self
        for (i, p) in padding.enumerated() where p.0 != 0 || p.1 != 0 {
            t = t.padded(axis: i, before: p.0, after: p.1, value: value)
        }
        return t
    }

    /// Broadcasts to `target` (a copy); the gradient sums back.
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let outShape = broadcastShape(shape, target, op: "expand")
        precondition(outShape == target, "expand: cannot expand \(shape) to \(target)")
        let out = broadcastKernel(self, Tensor(shape: target, repeating: 0), op: "expand") { x, _ in x }
        let input = self
        return out.recorded("expand", [input]) { g in [g.sumToShape(input.shape)] }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis a: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat: no tensors")
        let first = tensors[0]
        let ax = first.axis(a, op: "concat")
        for t in tensors {
            precondition(t.rank == first.rank && (0..<first.rank).allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] },
                         "concat: shapes \(tensors.map(\.shape)) differ outside axis \(ax)")
        }
        if tensors.count == 1 { return first }
        var outShape = first.shape
        outShape[ax] = tensors.map { $0.shape[ax] }.reduce(0, +)
        let out = Tensor.uninitialized(outShape)
        let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
        let dstRow = outShape[ax] * inner
        var offset = 0
        var starts: [Int] = []
        for t in tensors {
            starts.append(offset)
            let block = t.shape[ax] * inner
            let src = t.pointer, dst = out.pointer
            for o in 0..<outer { (dst + o * dstRow + offset * inner).update(from: src + o * block, count: block) }
            offset += t.shape[ax]
        }
        return out.recorded("concat", tensors) { g in
            zip(tensors, starts).map { t, s in t.requiresGrad ? g.sliced(axis: ax, s..<(s + t.shape[ax])) : nil }
        }
    }

    /// Splits along `axis` into pieces of the given sizes.
    public func split(sizes: [Int], axis a: Int) -> [Tensor] {
        let ax = axis(a, op: "split")
        precondition(sizes.reduce(0, +) == shape[ax] && sizes.allSatisfy { $0 >= 0 },
                     "split: sizes \(sizes) do not add up to \(shape[ax]) along axis \(ax) of \(shape)")
        var start = 0
        return sizes.map { n in defer { start += n }; return sliced(axis: ax, start..<(start + n)) }
    }

    /// Splits along `axis` into `parts` equal pieces.
    public func chunked(_ parts: Int, axis a: Int) -> [Tensor] {
        let ax = axis(a, op: "chunk")
        precondition(parts > 0 && shape[ax] % parts == 0, "chunk: axis \(ax) of \(shape) does not split into \(parts)")
        return split(sizes: Array(repeating: shape[ax] / parts, count: parts), axis: ax)
    }

    /// Stacks equal-shaped tensors along a new axis.
    public static func stack(_ tensors: [Tensor], axis a: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stack: no tensors")
        let shape0 = tensors[0].shape
        precondition(tensors.allSatisfy { $0.shape == shape0 }, "stack: shapes differ: \(tensors.map(\.shape))")
        let ax = a < 0 ? a + shape0.count + 1 : a
        return concat(tensors.map { $0.unsqueezed(ax) }, axis: ax)
    }
}
