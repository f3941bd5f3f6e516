// Embedding lookup with a deterministic scatter-add backward.

extension Tensor {
    /// Rows of `weight` [V, D] picked by `indices` (integer ids stored as Float, any shape); the
    /// result has shape indices.shape + [D]. Matches `torch.nn.functional.embedding(ids, weight)`
    /// without `padding_idx`, `max_norm` or sparse gradients. Each id must be a whole number in
    /// 0..<V (checked with a precondition that names the id and the vocabulary size).
    ///
    /// The weight's gradient adds each output row's gradient into the row of its id, ids taken in
    /// order (fixed for every thread count); repeated ids accumulate. The indices get no gradient.
    public static func embedding(indices: Tensor, weight: Tensor) -> Tensor {
        precondition(weight.rank == 2, "embedding: weight must be [vocabulary, dim], got shape \(weight.shape)")
        let vocabulary = weight.shape[0], dim = weight.shape[1]
        let tokens = indices.count
        var ids = [Int](repeating: 0, count: tokens)
        let pi = indices.pointer
        for t in 0..<tokens {
            guard let id = Int(exactly: pi[t]) else {
                preconditionFailure("embedding: id \(pi[t]) at position \(t) is not a whole number")
            }
            precondition(id >= 0 && id < vocabulary,
                         "embedding: id \(id) at position \(t) is out of range for vocabulary size \(vocabulary)")
            ids[t] = id
        }
        let out = Tensor.uninitialized(indices.shape + [dim])
        let pw = weight.pointer, po = out.pointer
        ids.withUnsafeBufferPointer { idp in
            parallelFor(tokens, grain: rowGrain(dim, elements: 32768)) { range in
                for t in range { (po + t * dim).update(from: pw + idp[t] * dim, count: dim) }
            }
        }
        return out.recorded("embedding", [weight]) { g in
            let gw = Tensor.zeros(weight.shape)
            let pg = g.pointer, pd = gw.pointer
            // Split over columns, so every element sums its contributions in token order.
            ids.withUnsafeBufferPointer { idp in
                parallelFor(dim, grain: Swift.max(16, 32768 / Swift.max(tokens, 1))) { cols in
                    for t in 0..<tokens {
                        let src = pg + t * dim, dst = pd + idp[t] * dim
                        for j in cols { dst[j] += src[j] }
                    }
                }
            }
            return [gw]
        }
    }
}
