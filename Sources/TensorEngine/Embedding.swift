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
        let ids = embeddingIDs(indices, vocabulary: vocabulary)
        let out = Engine.backend.gatherRows(weight, ids).reshaped(indices.shape + [dim])
        return out.recordedComposed("embedding", [weight]) { g in
            [g.reshaped([tokens, dim]).scatterAddingRows(ids, count: vocabulary)]
        }
    }
}

/// The ids of an embedding lookup (read to the host: they steer the kernel), checked.
func embeddingIDs(_ indices: Tensor, vocabulary: Int) -> [Int] {
    indices.scalars.enumerated().map { t, v in
        guard let id = Int(exactly: v) else {
            preconditionFailure("embedding: id \(v) at position \(t) is not a whole number")
        }
        precondition(id >= 0 && id < vocabulary,
                     "embedding: id \(id) at position \(t) is out of range for vocabulary size \(vocabulary)")
        return id
    }
}
