/// Plain reference kernels that the fast (BLAS) paths are checked against, in tests and in
/// `diffclass selfcheck`. Deliberately simple: triple loops with Float64 accumulation.
public enum Reference {
    /// `a.matmul(b)` by triple loop, batch dimensions broadcast.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        Autograd.noGrad {
            let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
            precondition(b.shape[b.rank - 2] == k, "Reference.matmul: \(a.shape) x \(b.shape)")
            let batch = broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: "Reference.matmul")
            let ea = a.expanded(to: batch + [m, k]), eb = b.expanded(to: batch + [k, n])
            let pa = ea.pointer, pb = eb.pointer
            let out = Tensor.uninitialized(batch + [m, n])
            let po = out.pointer
            for z in 0..<batch.reduce(1, *) {
                for i in 0..<m {
                    for j in 0..<n {
                        var acc: Double = 0
                        for p in 0..<k { acc += Double(pa[z * m * k + i * k + p]) * Double(pb[z * k * n + p * n + j]) }
                        po[z * m * n + i * n + j] = Float(acc)
                    }
                }
            }
            return out
        }
    }
}
