import Foundation

// Scaled dot-product attention with a hand-written backward.
//
// Forward: the work is split into units of (batch index, block of up to 64 query rows). Each
// unit computes its block of scores with one GEMM (the scale folded into alpha), adds the mask,
// applies a fused masked softmax in place, and multiplies by V with a second GEMM. The full
// [L, S] probability matrix is never stored: the forward keeps only each row's log-sum-exp, and
// the backward recomputes each block's probabilities from it (as FlashAttention does), so memory
// stays at O(block * S) per worker. Every GEMM runs single-threaded inside the engine's fixed
// chunks, so results are identical for every `Engine.threads`.

extension Tensor {
    /// softmax(Q K^T * scale + mask) V over the last two dimensions.
    ///
    /// Shapes: query [..., L, D], key [..., S, D], value [..., S, Dv] with the same leading
    /// (batch, head) dimensions; the result is [..., L, Dv]. `scale` defaults to 1/sqrt(D).
    /// `causal` lets query i attend to keys 0...i only (PyTorch's top-left aligned `is_causal`,
    /// also when L != S). `attentionMask` is added to the scores; it must broadcast to
    /// [..., L, S] (use -inf, or a large negative value, to block a position).
    ///
    /// Matches `torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, 0.0,
    /// is_causal, scale)` for a float mask, up to Float rounding. Differs: no dropout, no boolean
    /// masks (pass 0 / -inf instead), no broadcasting of the batch dimensions of q, k and v (no
    /// grouped-query attention); a query row whose every score is -inf gives zeros (PyTorch's math
    /// path gives NaN). Gradients flow to query, key, value and the mask.
    public static func scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor,
                                                 attentionMask: Tensor? = nil, causal: Bool = false,
                                                 scale: Float? = nil) -> Tensor {
        let shape = AttentionShape(query: query, key: key, value: value)
        let alpha = scale ?? 1 / Float(shape.d).squareRoot()
        if let attentionMask { shape.checkMask(attentionMask) }
        var inputs = [query, key, value]
        if let attentionMask { inputs.append(attentionMask) }
        let record = Autograd.shouldRecord(inputs)
        let backend = Engine.backend
        let (out, saved) = backend.attention(query: query, key: key, value: value, mask: attentionMask, shape: shape,
                                             scale: alpha, causal: causal, keepForBackward: record)
        guard record else { return out }
        return out.recorded("scaled_dot_product_attention", inputs, backward: { [unowned out] g in
            let needs = AttentionGradientNeeds(query: query.requiresGrad, key: key.requiresGrad, value: value.requiresGrad,
                                               mask: attentionMask?.requiresGrad ?? false)
            let r = backend.attentionBackward(gradient: g, query: query, key: key, value: value, mask: attentionMask,
                                              output: out, saved: saved, shape: shape, scale: alpha, causal: causal, needs: needs)
            var grads: [Tensor?] = [r.query, r.key, r.value]
            if attentionMask != nil { grads.append(r.mask) }
            return grads
        }, differentiableBackward: { g in
            // Recomputed as matmul, softmax ops and matmul (the scores materialised) and differentiated.
            let r = Tensor.recomputedGradients([query, key, value, attentionMask], gradient: g) { xs in
                Reference.scaledDotProductAttention(query: xs[0]!, key: xs[1]!, value: xs[2]!, attentionMask: xs[3],
                                                       causal: causal, scale: alpha)
            }
            var grads: [Tensor?] = [r[0], r[1], r[2]]
            if attentionMask != nil { grads.append(r[3]) }
            return grads
        })
    }
}

/// Sizes of one attention call: query [lead..., l, d], key [lead..., s, d], value [lead..., s, dv],
/// batch = the product of `lead`.
public struct AttentionShape: Sendable, Equatable {
    public let lead: [Int]
    public let batch: Int, l: Int, s: Int, d: Int, dv: Int
    static let blockRows = 64

    /// Checks the three shapes (same rank >= 2, same leading dimensions, matching sizes).
    public init(query q: Tensor, key k: Tensor, value v: Tensor) {
        let r = q.rank
        precondition(r >= 2 && k.rank == r && v.rank == r,
                     "scaledDotProductAttention: query \(q.shape), key \(k.shape) and value \(v.shape) must have the same rank >= 2")
        lead = Array(q.shape.dropLast(2))
        precondition(Array(k.shape.dropLast(2)) == lead && Array(v.shape.dropLast(2)) == lead,
                     "scaledDotProductAttention: leading dimensions of query \(q.shape), key \(k.shape) and value \(v.shape) differ")
        l = q.shape[r - 2]; d = q.shape[r - 1]; s = k.shape[r - 2]; dv = v.shape[r - 1]
        precondition(k.shape[r - 1] == d, "scaledDotProductAttention: key \(k.shape) and query \(q.shape) differ in the last dimension")
        precondition(v.shape[r - 2] == s, "scaledDotProductAttention: key \(k.shape) and value \(v.shape) differ in length")
        batch = lead.reduce(1, *)
    }

    var blocks: Int { (l + Self.blockRows - 1) / Self.blockRows }

    /// Query rows of block `b` of one batch index.
    func rows(ofBlock b: Int) -> Range<Int> { (b * Self.blockRows)..<Swift.min(l, (b + 1) * Self.blockRows) }

    /// Keys a block of query rows can see: all, or for causal attention up to its last row.
    func keyCount(_ rows: Range<Int>, causal: Bool) -> Int { causal ? Swift.min(s, rows.upperBound) : s }

    /// Keys query row `i` can see.
    @inline(__always) func validKeys(row i: Int, causal: Bool) -> Int { causal ? Swift.min(s, i + 1) : s }

    /// The shape of the scores, [lead..., l, s].
    public var scoresShape: [Int] { lead + [l, s] }

    /// Checks that an additive mask broadcasts to the scores.
    func checkMask(_ mask: Tensor) {
        let rank = lead.count + 2
        precondition(mask.rank <= rank,
                     "scaledDotProductAttention: mask \(mask.shape) has more dimensions than the scores \(scoresShape)")
        let padded = [Int](repeating: 1, count: rank - mask.rank) + mask.shape
        precondition(broadcastShape(padded, scoresShape, op: "scaledDotProductAttention mask") == scoresShape,
                     "scaledDotProductAttention: mask \(mask.shape) does not broadcast to the scores \(scoresShape)")
    }
}

/// An additive mask with contiguous [L, S] rows and an element offset per batch index.
struct AttentionMask {
    let tensor: Tensor
    let offsets: [Int]

    init(_ mask: Tensor, shape sh: AttentionShape) {
        let rank = sh.lead.count + 2
        let padded = [Int](repeating: 1, count: rank - mask.rank) + mask.shape
        let maskLead = Array(padded.dropLast(2))
        tensor = Autograd.noGrad { () -> Tensor in
            let m = mask.reshaped(padded)
            return padded.suffix(2).elementsEqual([sh.l, sh.s]) ? m : m.expanded(to: maskLead + [sh.l, sh.s])
        }
        let strides = broadcastStrides(maskLead, to: sh.lead)
        offsets = (0..<sh.batch).map { i in
            var rem = i, off = 0
            for dim in stride(from: sh.lead.count - 1, through: 0, by: -1) {
                off += (rem % sh.lead[dim]) * strides[dim]
                rem /= sh.lead[dim]
            }
            return off * sh.l * sh.s
        }
    }
}

/// scores[i, j] = alpha * q[row0 + i] . k[j] + mask, for rows.count rows and `keys` keys
/// (leading dimension `keys`).
@inline(__always)
func attentionScores(q: UnsafePointer<Float>, k: UnsafePointer<Float>, mask: AttentionMask?, batchIndex bi: Int,
                     rows: Range<Int>, keys: Int, shape sh: AttentionShape, alpha: Float,
                     scores: UnsafeMutablePointer<Float>) {
    sgemm(transA: false, transB: true, m: rows.count, n: keys, k: sh.d, alpha: alpha,
          a: q + (bi * sh.l + rows.lowerBound) * sh.d, lda: sh.d, b: k + bi * sh.s * sh.d, ldb: sh.d,
          beta: 0, c: scores, ldc: keys)
    if let mask {
        let base = mask.tensor.pointer + mask.offsets[bi]
        for (ii, i) in rows.enumerated() {
            let sr = scores + ii * keys, mr = base + i * sh.s
            for j in 0..<keys { sr[j] += mr[j] }
        }
    }
}

func attentionForward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                      mask: AttentionMask?, out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?,
                      shape sh: AttentionShape, alpha: Float, causal: Bool) {
    if sh.batch == 0 || sh.l == 0 || sh.dv == 0 { return }
    let blocks = sh.blocks
    Engine.setBLASThreads(1)
    parallelChunks(sh.batch * blocks) { unit in
        let bi = unit / blocks, rows = sh.rows(ofBlock: unit % blocks)
        let keys = sh.keyCount(rows, causal: causal)
        let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(rows.count * keys, 1))
        defer { p.deallocate() }
        attentionScores(q: q, k: k, mask: mask, batchIndex: bi, rows: rows, keys: keys, shape: sh,
                        alpha: alpha, scores: p)
        // Masked softmax in place, row by row.
        for (ii, i) in rows.enumerated() {
            let pr = p + ii * keys
            let valid = sh.validKeys(row: i, causal: causal)
            let m = maxFloat(pr, valid)
            var rowLSE = Float.infinity
            if m == -.infinity {
                pr.update(repeating: 0, count: keys)  // nothing visible: zero output
            } else {
                for j in 0..<valid { pr[j] = fastExp(pr[j] - m) }
                let total = sumFloat(pr, valid), inv = 1 / total
                for j in 0..<valid { pr[j] *= inv }
                for j in valid..<keys { pr[j] = 0 }
                rowLSE = m + Foundation.log(total)
            }
            lse?[bi * sh.l + i] = rowLSE
        }
        sgemm(transA: false, transB: false, m: rows.count, n: sh.dv, k: keys, a: p, lda: keys,
              b: v + bi * sh.s * sh.dv, ldb: sh.dv, beta: 0, c: out + (bi * sh.l + rows.lowerBound) * sh.dv, ldc: sh.dv)
    }
}

/// With P = softmax(scores) recomputed from the saved log-sum-exp, per batch index:
///   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = alpha dS K,
///   dK = alpha dS^T Q,  dMask = dS (summed over broadcast dimensions).
/// Parallel over batch indices; query blocks run in order inside one, accumulating dK and dV.
func attentionBackward(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask?, maskTensor: Tensor?,
                       out: Tensor, lse: Tensor, shape sh: AttentionShape, alpha: Float, causal: Bool,
                       needs: AttentionGradientNeeds) -> [Tensor?] {
    let needQ = needs.query, needK = needs.key, needV = needs.value
    let needMask = maskTensor != nil && needs.mask
    let gq = needQ ? Tensor.zeros(q.shape) : nil
    let gk = needK ? Tensor.zeros(k.shape) : nil
    let gv = needV ? Tensor.zeros(v.shape) : nil
    let gmask = needMask ? Tensor.zeros(sh.lead + [sh.l, sh.s]) : nil
    let needScoreGrad = needQ || needK || needMask
    let pq = q.pointer, pk = k.pointer, pv = v.pointer, pg = grad.pointer, po = out.pointer, pl = lse.pointer
    if sh.batch > 0 && sh.l > 0 && (needV || needScoreGrad) {
        Engine.setBLASThreads(1)
        parallelChunks(sh.batch) { bi in
            let blockCap = Swift.max(Swift.min(sh.l, AttentionShape.blockRows) * sh.s, 1)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: blockCap)
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: blockCap)
            let delta = UnsafeMutablePointer<Float>.allocate(capacity: sh.l)
            defer { p.deallocate(); dp.deallocate(); delta.deallocate() }
            for i in 0..<sh.l {
                delta[i] = dotFloat(pg + (bi * sh.l + i) * sh.dv, po + (bi * sh.l + i) * sh.dv, sh.dv)
            }
            for b in 0..<sh.blocks {
                let rows = sh.rows(ofBlock: b), keys = sh.keyCount(rows, causal: causal)
                let gBlock = pg + (bi * sh.l + rows.lowerBound) * sh.dv
                attentionScores(q: pq, k: pk, mask: mask, batchIndex: bi, rows: rows, keys: keys, shape: sh,
                                alpha: alpha, scores: p)
                for (ii, i) in rows.enumerated() {
                    let pr = p + ii * keys, rowLSE = pl[bi * sh.l + i]
                    let valid = sh.validKeys(row: i, causal: causal)
                    for j in 0..<valid { pr[j] = fastExp(pr[j] - rowLSE) }
                    for j in valid..<keys { pr[j] = 0 }
                }
                if let gv {
                    sgemm(transA: true, transB: false, m: keys, n: sh.dv, k: rows.count, a: p, lda: keys,
                          b: gBlock, ldb: sh.dv, beta: 1, c: gv.pointer + bi * sh.s * sh.dv, ldc: sh.dv)
                }
                guard needScoreGrad else { continue }
                sgemm(transA: false, transB: true, m: rows.count, n: keys, k: sh.dv, a: gBlock, lda: sh.dv,
                      b: pv + bi * sh.s * sh.dv, ldb: sh.dv, beta: 0, c: dp, ldc: keys)
                for (ii, i) in rows.enumerated() {
                    let pr = p + ii * keys, dr = dp + ii * keys, di = delta[i]
                    for j in 0..<keys { dr[j] = pr[j] * (dr[j] - di) }
                }
                if let gmask {
                    for (ii, i) in rows.enumerated() {
                        (gmask.pointer + (bi * sh.l + i) * sh.s).update(from: dp + ii * keys, count: keys)
                    }
                }
                if let gq {
                    sgemm(transA: false, transB: false, m: rows.count, n: sh.d, k: keys, alpha: alpha, a: dp, lda: keys,
                          b: pk + bi * sh.s * sh.d, ldb: sh.d, beta: 0,
                          c: gq.pointer + (bi * sh.l + rows.lowerBound) * sh.d, ldc: sh.d)
                }
                if let gk {
                    sgemm(transA: true, transB: false, m: keys, n: sh.d, k: rows.count, alpha: alpha, a: dp, lda: keys,
                          b: pq + (bi * sh.l + rows.lowerBound) * sh.d, ldb: sh.d, beta: 1,
                          c: gk.pointer + bi * sh.s * sh.d, ldc: sh.d)
                }
            }
        }
    }
    var grads: [Tensor?] = [gq, gk, gv]
    if let maskTensor { grads.append(gmask.map { $0.sumToShape(maskTensor.shape) }) }
    return grads
}

// MARK: - CPU backend

extension CPUBackend {
    public func attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor?, shape: AttentionShape,
                          scale: Float, causal: Bool, keepForBackward: Bool) -> (output: Tensor, saved: AnyObject?) {
        let expanded = mask.map { AttentionMask($0, shape: shape) }
        let out = Tensor.uninitialized(shape.lead + [shape.l, shape.dv])
        let lse = Tensor.uninitialized([keepForBackward ? shape.batch * shape.l : 0])
        attentionForward(q: query.pointer, k: key.pointer, v: value.pointer, mask: expanded, out: out.pointer,
                         lse: keepForBackward ? lse.pointer : nil, shape: shape, alpha: scale, causal: causal)
        return (out, keepForBackward ? AttentionStatistics(logSumExp: lse, mask: expanded) : nil)
    }

    public func attentionBackward(gradient: Tensor, query: Tensor, key: Tensor, value: Tensor, mask: Tensor?,
                                  output: Tensor, saved: AnyObject?, shape: AttentionShape, scale: Float, causal: Bool,
                                  needs: AttentionGradientNeeds) -> (query: Tensor?, key: Tensor?, value: Tensor?, mask: Tensor?) {
        guard let stats = saved as? AttentionStatistics else { preconditionFailure("attentionBackward: the forward kept no statistics") }
        let g = TensorEngine.attentionBackward(grad: gradient, q: query, k: key, v: value, mask: stats.mask, maskTensor: mask,
                                               out: output, lse: stats.logSumExp, shape: shape, alpha: scale, causal: causal,
                                               needs: needs)
        return (g[0], g[1], g[2], g.count > 3 ? g[3] : nil)
    }
}

/// What the CPU attention keeps for its backward: each query row's log-sum-exp and the mask as
/// the kernels read it.
final class AttentionStatistics {
    let logSumExp: Tensor
    let mask: AttentionMask?
    init(logSumExp: Tensor, mask: AttentionMask?) { self.logSumExp = logSumExp; self.mask = mask }
}
