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
        return Tensor(shape: target, storage: storage).recordedComposed("reshape", [input]) { g in [g.reshaped(input.shape)] }
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
        let out = Engine.backend.permute(self, order)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        let input = self
        return out.recordedComposed("permute", [input]) { g in [g.permuted(inverse)] }
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
        let out = Engine.backend.slice(self, axis: ax, range)
        let input = self
        return out.recordedComposed("slice", [input]) { g in
            [g.padded(axis: ax, before: range.lowerBound, after: input.shape[ax] - range.upperBound)]
        }
    }

    /// Pads `axis` with `before` and `after` copies of `value`.
    public func padded(axis a: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = axis(a, op: "pad")
        precondition(before >= 0 && after >= 0, "pad: negative padding \(before), \(after)")
        if before == 0 && after == 0 { return self }
        let out = Engine.backend.pad(self, axis: ax, before: before, after: after, value: value)
        let input = self
        return out.recordedComposed("pad", [input]) { g in [g.sliced(axis: ax, before..<(before + input.shape[ax]))] }
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
        let out = Engine.backend.broadcast(self, to: target)
        let input = self
        return out.recordedComposed("expand", [input]) { g in [g.sumToShape(input.shape)] }
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
        var starts: [Int] = []
        var offset = 0
        for t in tensors { starts.append(offset); offset += t.shape[ax] }
        let out = Engine.backend.concat(tensors, axis: ax)
        return out.recordedComposed("concat", tensors) { g in
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

extension Tensor {
    /// Rows `rows` of this tensor along its first dimension, stacked: [rows.count, ...] (repeats
    /// allowed; like `torch.index_select(x, 0, rows)`). The gradient adds each row's gradient back
    /// into its source row, in order.
    public func gatherRows(_ rows: [Int]) -> Tensor {
        precondition(rank >= 1, "gatherRows: needs rank >= 1, got a 0-d tensor")
        let n = shape[0]
        for (i, r) in rows.enumerated() {
            precondition(r >= 0 && r < n, "gatherRows: row \(r) at position \(i) outside 0..<\(n) of shape \(shape)")
        }
        let out = Engine.backend.gatherRows(self, rows)
        let input = self
        return out.recordedComposed("gather_rows", [input]) { g in [g.scatterAddingRows(rows, count: n)] }
    }

    /// A copy of this tensor with row rows[i] (along the first dimension) replaced by row i of
    /// `values` ([rows.count, ...]; rows distinct), like `x.index_copy(0, rows, values)`. Gradients
    /// flow to both: the replaced rows get none from `self`.
    public func replacingRows(_ rows: [Int], with values: Tensor) -> Tensor {
        precondition(rank >= 1 && values.rank == rank && values.shape[0] == rows.count
                     && Array(values.shape.dropFirst()) == Array(shape.dropFirst()),
                     "replacingRows: values \(values.shape) for \(rows.count) rows of \(shape)")
        let n = shape[0]
        var seen = Set<Int>()
        for (i, r) in rows.enumerated() {
            precondition(r >= 0 && r < n, "replacingRows: row \(r) at position \(i) outside 0..<\(n) of shape \(shape)")
            precondition(seen.insert(r).inserted, "replacingRows: row \(r) appears twice")
        }
        if rows.isEmpty { return self }
        let out = Engine.backend.replaceRows(self, rows, with: values)
        let input = self
        return out.recordedComposed("replace_rows", [input, values]) { g in
            [input.requiresGrad ? g.replacingRows(rows, with: Tensor.zeros(values.shape)) : nil,
             values.requiresGrad ? g.gatherRows(rows) : nil]
        }
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
        let shape = x.shape, rank = x.rank, count = x.count
        let outShape = order.map { shape[$0] }
        let out = Tensor.uninitialized(outShape)
        // Input strides seen in output order.
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let st = order.map { inStrides[$0] }
        let inner = outShape[rank - 1], innerStride = st[rank - 1]
        let outer = count / Swift.max(inner, 1)
        let src = x.pointer, dst = out.pointer
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
        return out
    }

    public func slice(_ x: Tensor, axis ax: Int, _ range: Range<Int>) -> Tensor {
        let shape = x.shape
        var outShape = shape; outShape[ax] = range.count
        let out = Tensor.uninitialized(outShape)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let block = range.count * inner, srcRow = shape[ax] * inner, start = range.lowerBound * inner
        let src = x.pointer, dst = out.pointer
        for o in 0..<outer { (dst + o * block).update(from: src + o * srcRow + start, count: block) }
        return out
    }

    public func pad(_ x: Tensor, axis ax: Int, before: Int, after: Int, value: Float) -> Tensor {
        let shape = x.shape
        var outShape = shape; outShape[ax] += before + after
        let out = Tensor(shape: outShape, repeating: value)
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let block = shape[ax] * inner, dstRow = outShape[ax] * inner
        let src = x.pointer, dst = out.pointer
        for o in 0..<outer { (dst + o * dstRow + before * inner).update(from: src + o * block, count: block) }
        return out
    }

    public func concat(_ tensors: [Tensor], axis ax: Int) -> Tensor {
        let first = tensors[0]
        var outShape = first.shape
        outShape[ax] = tensors.map { $0.shape[ax] }.reduce(0, +)
        let out = Tensor.uninitialized(outShape)
        let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
        let dstRow = outShape[ax] * inner
        var offset = 0
        for t in tensors {
            let block = t.shape[ax] * inner
            let src = t.pointer, dst = out.pointer
            for o in 0..<outer { (dst + o * dstRow + offset * inner).update(from: src + o * block, count: block) }
            offset += t.shape[ax]
        }
        return out
    }

    public func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor {
        broadcastKernel(x, Tensor(shape: shape, repeating: 0), op: "expand") { v, _ in v }
    }

    public func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor {
        let per = x.shape.dropFirst().reduce(1, *)
        let out = Tensor.uninitialized([rows.count] + Array(x.shape.dropFirst()))
        let px = x.pointer, po = out.pointer
        rows.withUnsafeBufferPointer { idp in
            parallelFor(rows.count, grain: rowGrain(per, elements: 32768)) { range in
                for t in range { (po + t * per).update(from: px + idp[t] * per, count: per) }
            }
        }
        return out
    }

    public func scatterAddRows(_ gradient: Tensor, _ rows: [Int], count: Int) -> Tensor {
        let per = gradient.shape.dropFirst().reduce(1, *)
        let out = Tensor.zeros([count] + Array(gradient.shape.dropFirst()))
        let pg = gradient.pointer, pd = out.pointer
        let tokens = rows.count
        // Split over columns, so every element sums its contributions in row order.
        rows.withUnsafeBufferPointer { idp in
            parallelFor(per, grain: Swift.max(16, 32768 / Swift.max(tokens, 1))) { cols in
                for t in 0..<tokens {
                    let src = pg + t * per, dst = pd + idp[t] * per
                    for j in cols { dst[j] += src[j] }
                }
            }
        }
        return out
    }

    public func replaceRows(_ x: Tensor, _ rows: [Int], with values: Tensor) -> Tensor {
        let per = x.shape.dropFirst().reduce(1, *)
        let out = copy(x)
        let pv = values.pointer, po = out.pointer
        for (i, r) in rows.enumerated() { (po + r * per).update(from: pv + i * per, count: per) }
        return out
    }
}
