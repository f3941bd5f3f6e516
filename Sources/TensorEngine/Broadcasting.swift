/// NumPy/PyTorch broadcasting: shapes align at the trailing dimension; a dimension of 1 (or a
/// missing leading one) stretches to the other's size.
public func broadcastShape(_ a: [Int], _ b: [Int], op: String) -> [Int] {
    let r = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
            preconditionFailure("\(op): shapes \(a) and \(b) cannot be broadcast together")
        }
    }
    return out
}

/// Element strides of `shape` read as `outShape` under broadcasting (0 on stretched dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let r = outShape.count
    var strides = [Int](repeating: 0, count: r)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        let o = i + (r - shape.count)
        strides[o] = (shape[i] == 1 && outShape[o] != 1) ? 0 : s
        s *= shape[i]
    }
    return strides
}

/// A broadcast iteration plan: the output shape with adjacent dimensions merged wherever both
/// operands step through them alike, which keeps inner loops long (e.g. [N,C,H,W] + [1,C,1,1]
/// becomes [N, C, H*W] with strides [0,1,0] for the bias).
struct BroadcastPlan {
    var dims: [Int]
    var stridesA: [Int]
    var stridesB: [Int]

    init(outShape: [Int], a: [Int], b: [Int]) {
        let sa = broadcastStrides(a, to: outShape)
        let sb = broadcastStrides(b, to: outShape)
        var dims: [Int] = []
        var stA: [Int] = []
        var stB: [Int] = []
        for i in 0..<outShape.count where outShape[i] != 1 {
            if let last = dims.last,
               stA.last! == sa[i] * outShape[i] || (stA.last! == 0 && sa[i] == 0),
               stB.last! == sb[i] * outShape[i] || (stB.last! == 0 && sb[i] == 0) {
                dims[dims.count - 1] = last * outShape[i]
                stA[stA.count - 1] = sa[i]
                stB[stB.count - 1] = sb[i]
            } else {
                dims.append(outShape[i]); stA.append(sa[i]); stB.append(sb[i])
            }
        }
        if dims.isEmpty { dims = [1]; stA = [0]; stB = [0] }
        self.dims = dims
        self.stridesA = stA
        self.stridesB = stB
    }
}

extension Tensor {
    /// Sums `self` (a gradient of broadcast shape) down to `target`, the shape of an operand that
    /// was broadcast: the adjoint of broadcasting.
    public func sumToShape(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        precondition(lead >= 0, "sumToShape: cannot reduce \(shape) to \(target)")
        var axes: [Int] = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[i + lead] != 1 { axes.append(i + lead) }
        let reduced = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return reduced.reshaped(target)
    }
}
