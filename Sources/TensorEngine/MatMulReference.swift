/// The plain reference versions of the engine's kernels, one namespace: what the fast paths
/// are checked against, in tests and in `diffclass selfcheck`, and what `ReferenceBackend` is
/// built from. Deliberately simple: loops with Float64 accumulation (matmul here, the image ops
/// in ConvolutionReference.swift, half precision in HalfPrecision.swift), or compositions of the
/// basic recorded ops (the fused ops in FusedOpsReference.swift, whose gradients come from
/// autodiff).
public enum Reference {
    /// `a.matmul(b)` by triple loop, batch dimensions broadcast.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        matmul(a, b, transposeA: false, transposeB: false)
    }

    /// op(a) op(b) over the last two dimensions by triple loop (op = transpose where asked),
    /// batch dimensions broadcast; no history.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        let ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1], br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1]
        let m = transposeA ? ac : ar, k = transposeA ? ar : ac, n = transposeB ? br : bc
        precondition(k == (transposeB ? bc : br), "Reference.matmul: \(a.shape) x \(b.shape)")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = broadcastShape(batchA, batchB, op: "Reference.matmul")
        let stA = broadcastStrides(batchA, to: batch), stB = broadcastStrides(batchB, to: batch)
        let out = Tensor.uninitialized(batch + [m, n])
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        for z in 0..<batch.reduce(1, *) {
            var rem = z, oa = 0, ob = 0
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                let i = rem % batch[d]; rem /= batch[d]
                oa += i * stA[d]; ob += i * stB[d]
            }
            let ba = pa + oa * ar * ac, bb = pb + ob * br * bc
            for i in 0..<m {
                for j in 0..<n {
                    var acc: Double = 0
                    for p in 0..<k {
                        let x = transposeA ? ba[p * ac + i] : ba[i * ac + p]
                        let y = transposeB ? bb[j * bc + p] : bb[p * bc + j]
                        acc += Double(x) * Double(y)
                    }
                    po[(z * m + i) * n + j] = Float(acc)
                }
            }
        }
        return out
    }
}
