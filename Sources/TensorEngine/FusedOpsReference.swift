import Foundation

/// Plain versions of the fused kernels (softmax, normalisation, attention, embedding), composed
/// from the basic recorded ops, so their gradients come from the autodiff of those ops. They are
/// slow and memory-hungry and exist to check the fast versions (values and gradients) and to
/// document what they compute; use the `Tensor` methods in models.
extension Reference {
    /// exp(x - max) / sum(exp(x - max)) along `axis`.
    public static func softmax(_ x: Tensor, axis: Int = -1) -> Tensor {
        let e = (x - Autograd.noGrad { x.max(axes: [axis], keepDims: true) }).exp()
        return e / e.sum(axes: [axis], keepDims: true)
    }

    /// (x - max) - log(sum(exp(x - max))) along `axis`.
    public static func logSoftmax(_ x: Tensor, axis: Int = -1) -> Tensor {
        let shifted = x - Autograd.noGrad { x.max(axes: [axis], keepDims: true) }
        return shifted - shifted.exp().sum(axes: [axis], keepDims: true).log()
    }

    /// Group norm through reshape to [N, groups, -1], mean and population variance.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil,
                                 eps: Float = 1e-5) -> Tensor {
        let n = x.shape[0], c = x.shape[1]
        let grouped = x.reshaped([n, groups, x.count / Swift.max(n * groups, 1)])
        let centered = grouped - grouped.mean(axes: [2], keepDims: true)
        let variance = centered.square().mean(axes: [2], keepDims: true)
        let normalized = (centered / (variance + eps).sqrt()).reshaped(x.shape)
        let channelShape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
        return affine(normalized, weight?.reshaped(channelShape), bias?.reshaped(channelShape))
    }

    /// silu(groupNorm(x)).
    public static func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil,
                                     eps: Float = 1e-5) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps).silu()
    }

    /// Layer norm over the trailing `normalizedShape` (default: the last dimension).
    public static func layerNorm(_ x: Tensor, normalizedShape: [Int]? = nil, weight: Tensor? = nil,
                                 bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        let k = (normalizedShape ?? weight?.shape ?? [x.shape.last ?? 1]).count
        let axes = Array((x.rank - k)..<x.rank)
        let centered = x - x.mean(axes: axes, keepDims: true)
        let variance = centered.square().mean(axes: axes, keepDims: true)
        return affine(centered / (variance + eps).sqrt(), weight, bias)
    }

    /// softmax(Q K^T * scale + mask [+ causal -inf mask]) V through `matmul` and the ops of
    /// `softmax` above, with the fused kernel's rule for a query row whose every score is -inf:
    /// it gives zeros (the row's maximum is taken as 0 and its sum as 1, so no NaN appears).
    public static func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor,
                                                 attentionMask: Tensor? = nil, causal: Bool = false,
                                                 scale: Float? = nil) -> Tensor {
        let d = query.shape[query.rank - 1], l = query.shape[query.rank - 2], s = key.shape[key.rank - 2]
        var scores = query.matmul(key.transposed()) * (scale ?? 1 / Float(d).squareRoot())
        if let attentionMask { scores = scores + attentionMask }
        if causal {
            var blocked = [Float](repeating: 0, count: l * s)
            for i in 0..<l { for j in 0..<s where j > i { blocked[i * s + j] = -.infinity } }
            scores = scores + Tensor(shape: [l, s], blocked)
        }
        let m = Autograd.noGrad { scores.max(axes: [-1], keepDims: true) }
        let visible = m.greater(-.infinity)
        let e = (scores - Tensor.where(visible, m, Tensor(0))).exp()
        let total = Tensor.where(visible, e.sum(axes: [-1], keepDims: true), Tensor(1))
        return (e / total).matmul(value)
    }

    /// A one-hot [tokens, V] matrix times the weight [V, D].
    public static func embedding(indices: Tensor, weight: Tensor) -> Tensor {
        let v = weight.shape[0]
        var oneHot = [Float](repeating: 0, count: indices.count * v)
        for (t, id) in indices.scalars.enumerated() { oneHot[t * v + Int(id)] = 1 }
        return Tensor(shape: [indices.count, v], oneHot).matmul(weight).reshaped(indices.shape + [weight.shape[1]])
    }

    private static func affine(_ x: Tensor, _ weight: Tensor?, _ bias: Tensor?) -> Tensor {
        var y = x
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }
}
