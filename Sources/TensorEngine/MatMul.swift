import CEngineSupport

/// C[m,n] (+)= op(A) op(B) through BLAS, row-major, with 32-bit size checks; in bfloat16
/// (`Engine.computeDType`) through the AVX512_BF16 kernel of CEngineSupport/bf16_gemm.c.
@inlinable
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    precondition(m < Int(Int32.max) && n < Int(Int32.max) && k < Int(Int32.max)
                 && m * k < Int(Int32.max) && k * n < Int(Int32.max) && m * n < Int(Int32.max),
                 "sgemm: sizes m=\(m) n=\(n) k=\(k) exceed 32-bit BLAS indexing")
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    if Engine._computeDType == .bfloat16,
       ces_sgemm_bf16(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                      b, Int32(ldb), beta, c, Int32(ldc)) == 1 {
        return
    }
    ces_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
              b, Int32(ldb), beta, c, Int32(ldc))
}

/// c = a b for a [m, k], b [k, n], c [m, n] as one unpartitioned BLAS call with `Engine.threads`
/// BLAS threads, into c's memory (for benchmarks: "the raw BLAS call"; CPU memory only). Its bits
/// may depend on the thread count; the engine itself uses `blasMatmul`.
public func rawBLASMatmul(_ a: Tensor, _ b: Tensor, into c: Tensor) {
    precondition(a.rank == 2 && b.rank == 2 && c.shape == [a.shape[0], b.shape[1]] && a.shape[1] == b.shape[0],
                 "rawBLASMatmul: \(a.shape) x \(b.shape) into \(c.shape)")
    let m = a.shape[0], k = a.shape[1], n = b.shape[1]
    Engine.setBLASThreads(Engine.threads)
    sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
}

/// C[m,n] = alpha op(A) op(B) + beta C through BLAS, packed row-major operands, for the CPU
/// backend's kernels.
///
/// Multi-threaded OpenBLAS does not always give the same bits as single-threaded (it splits
/// work by thread count), so products are split here into a fixed partition, each block a
/// single-threaded BLAS call run on the engine's workers: identical results for every thread count.
///
/// Without `transA` (layers: rows of A are samples, B holds weights) the partition is in blocks
/// of `blockRows(n:k:)` rows, a size fixed by B's shape alone, and a last, partial block is padded
/// to a full one: every BLAS call has the same shape whatever m, so BLAS takes one path (its
/// small-matrix kernels, picked by m n k, round differently) and a row's result does not depend on
/// how many rows the product has (the batch). With `transA` (gradients) the partition depends on
/// the shape (row blocks, or column blocks when C is wide).
func blasMatmul(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                       a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float = 0,
                       c: UnsafeMutablePointer<Float>) {
    let lda = transA ? m : k, ldb = transB ? k : n
    if !transA {
        let per = blockRows(n: n, k: k)
        let full = m / per, count = (m + per - 1) / per
        Engine.setBLASThreads(1)
        parallelChunks(count) { i in
            let start = i * per
            if i < full {
                sgemm(transA: false, transB: transB, m: per, n: n, k: k, alpha: alpha, a: a + start * k, lda: k,
                      b: b, ldb: ldb, beta: beta, c: c + start * n, ldc: n)
                return
            }
            // The last rows, padded with zero rows to a full block.
            let rows = m - start
            withScratch(per * (k + n)) { scratch in
                let pa = scratch, pc = scratch + per * k
                pa.update(from: a + start * k, count: rows * k)
                (pa + rows * k).update(repeating: 0, count: (per - rows) * k)
                if beta != 0 { pc.update(from: c + start * n, count: rows * n) }
                (pc + rows * n).update(repeating: 0, count: (per - rows) * n)
                sgemm(transA: false, transB: transB, m: per, n: n, k: k, alpha: alpha, a: pa, lda: k,
                      b: b, ldb: ldb, beta: beta, c: pc, ldc: n)
                (c + start * n).update(from: pc, count: rows * n)
            }
        }
        return
    }
    let work = Double(m) * Double(n) * Double(k)
    // About 4 MFLOP at least per block, at most 8 blocks: every block re-packs the shared
    // operand, which costs a few percent on large square products at 16 blocks.
    let blocks = Swift.max(1, Swift.min(8, Int(work / 2e6)))
    let splitRows = m >= n
    let extent = splitRows ? m : n
    let per = Swift.max(splitRows ? 16 : 64, (extent + blocks - 1) / blocks)
    let count = (extent + per - 1) / per
    if count <= 1 {
        Engine.setBLASThreads(1)
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
              beta: beta, c: c, ldc: n)
        return
    }
    parallelChunks(count) { i in
        let start = i * per, size = Swift.min(per, extent - start)
        if splitRows {
            // Rows start..<start+size of op(A).
            let aBlock = transA ? a + start : a + start * lda
            sgemm(transA: transA, transB: transB, m: size, n: n, k: k, alpha: alpha, a: aBlock, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c + start * n, ldc: n)
        } else {
            // Columns start..<start+size of op(B).
            let bBlock = transB ? b + start * ldb : b + start
            sgemm(transA: transA, transB: transB, m: m, n: size, k: k, alpha: alpha, a: a, lda: lda,
                  b: bBlock, ldb: ldb, beta: beta, c: c + start, ldc: n)
        }
    }
}

/// Rows per block of `blasMatmul` without `transA`: about 4 MFLOP per block (2 x rows x n x k),
/// a multiple of 16 in [16, 512]. Depends on n and k only, never on m.
func blockRows(n: Int, k: Int) -> Int {
    let rows = Int(2e6 / Double(Swift.max(1, n * k)))
    return Swift.min(512, Swift.max(16, (rows + 15) & ~15))
}

extension Tensor {
    /// Matrix product over the last two dimensions, batch dimensions broadcast as in
    /// `torch.matmul` (both operands need rank >= 2).
    public func matmul(_ other: Tensor) -> Tensor {
        let a = self, b = other
        let out = Tensor.batchedProduct(a, b, transA: false, transB: false)
        return out.recordedComposed("matmul", [a, b]) { g in
            [a.requiresGrad ? Tensor.product(g, b, transA: false, transB: true).sumToShape(a.shape) : nil,
             b.requiresGrad ? Tensor.product(a, g, transA: true, transB: false).sumToShape(b.shape) : nil]
        }
    }

    /// op(a) @ op(b) over the last two dimensions with batch broadcasting; no recording.
    /// The result has the broadcast batch shape.
    static func batchedProduct(_ a: Tensor, _ b: Tensor, transA: Bool, transB: Bool) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank >= 2, got \(a.shape) and \(b.shape)")
        let ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1]
        let br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1]
        let k = transA ? ar : ac, kb = transB ? bc : br
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transA ? "ᵀ" : "") and \(b.shape)\(transB ? "ᵀ" : "")")
        _ = broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: "matmul")
        return Engine.backend.matmul(a, b, transposeA: transA, transposeB: transB)
    }

    /// y = x W^T + b for x [..., in], W [out, in], b [out] (PyTorch's `nn.functional.linear`).
    public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        let x = self
        precondition(weight.rank == 2 && x.rank >= 1 && x.shape[x.rank - 1] == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
        let inF = weight.shape[1], outF = weight.shape[0]
        if let bias { precondition(bias.shape == [outF], "linear: bias \(bias.shape) for weight \(weight.shape)") }
        let rows = x.count / Swift.max(inF, 1)
        let out = Engine.backend.linear(x.viewed([rows, inF]), weight: weight, bias: bias)
            .reshaped(Array(x.shape.dropLast()) + [outF])
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return out.recordedComposed("linear", inputs) { g in
            var grads: [Tensor?] = []
            let g2 = g.reshaped([rows, outF])
            grads.append(x.requiresGrad ? Tensor.product(g2, weight, transA: false, transB: false).reshaped(x.shape) : nil)
            grads.append(weight.requiresGrad ? Tensor.product(g2, x.reshaped([rows, inF]), transA: true, transB: false) : nil)
            if let bias { grads.append(bias.requiresGrad ? g2.sum(axes: [0]) : nil) }
            return grads
        }
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA transA: Bool, transposeB transB: Bool) -> Tensor {
        let ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1]
        let br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1]
        let m = transA ? ac : ar, k = transA ? ar : ac
        let n = transB ? br : bc
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = broadcastShape(batchA, batchB, op: "matmul")
        let out = Tensor.uninitialized(batch + [m, n])
        let nb = batch.reduce(1, *)
        if out.count == 0 { return out }
        let lda = ac, ldb = bc

        // B shared by every batch and A not transposed: one tall product.
        if batchB.reduce(1, *) == 1 && !transA && batchA == batch {
            blasMatmul(transA: false, transB: transB, m: nb * m, n: n, k: k, a: a.pointer, b: b.pointer, c: out.pointer)
            return out
        }
        let stA = broadcastStrides(batchA, to: batch).map { $0 * ar * ac }
        let stB = broadcastStrides(batchB, to: batch).map { $0 * br * bc }
        func offsets(_ i: Int) -> (Int, Int) {
            var rem = i, oa = 0, ob = 0
            var d = batch.count - 1
            while d >= 0 { let x = rem % batch[d]; rem /= batch[d]; oa += x * stA[d]; ob += x * stB[d]; d -= 1 }
            return (oa, ob)
        }
        let pa = a.pointer, pb = b.pointer, pc = out.pointer
        if nb == 1 {
            blasMatmul(transA: transA, transB: transB, m: m, n: n, k: k, a: pa, b: pb, c: pc)
            return out
        }
        // Many small products: one per worker chunk, BLAS single-threaded inside.
        parallelChunks(nb) { i in
            let (oa, ob) = offsets(i)
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa + oa, lda: lda,
                  b: pb + ob, ldb: ldb, c: pc + i * m * n, ldc: n)
        }
        return out
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let rows = x.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        let out = Tensor.uninitialized([rows, outF])
        if let bias {
            let pb = bias.pointer, po = out.pointer
            for r in 0..<rows { (po + r * outF).update(from: pb, count: outF) }
        }
        if out.count > 0 {
            blasMatmul(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.pointer, b: weight.pointer,
                       beta: bias == nil ? 0 : 1, c: out.pointer)
        }
        return out
    }
}
