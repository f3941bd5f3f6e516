// Seeded inverted dropout. The mask is never stored: the backward pass regenerates it from a copy
// of the generator taken before the draw (a Philox block is a pure function of its counter), so
// dropout keeps no extra memory for the graph.

/// out[i] = keep(i) ? x[i] * scale : 0, with keep(i) = (uniform element i of a draw from
/// `generator`) < keep probability; writes `count` values; does not advance `generator`.
func dropoutKernel(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int,
                   generator: RandomGenerator, keep: Float, scale: Float) {
    let s = PhiloxStream(seed: generator.seed, stream: generator.stream), base = generator.offset
    let blocks = (n + 3) / 4
    @inline(__always) func f(_ w: UInt32, _ x: Float) -> Float { unitFloat24(w) < keep ? x * scale : 0 }
    parallelFor(blocks, grain: 8192) { range in
        for k in range {
            let w = s.block(base &+ UInt64(k))
            let i = 4 * k
            if i + 4 <= n {
                dst[i] = f(w.0, src[i]); dst[i + 1] = f(w.1, src[i + 1])
                dst[i + 2] = f(w.2, src[i + 2]); dst[i + 3] = f(w.3, src[i + 3])
            } else {
                let words = [w.0, w.1, w.2, w.3]
                for j in 0..<(n - i) { dst[i + j] = f(words[j], src[i + j]) }
            }
        }
    }
}

extension Tensor {
    /// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
    /// otherwise set to 0 (a dropped element is 0 even when the input is NaN or infinite). The
    /// gradient passes through the same mask with the same scale.
    ///
    /// The mask is exactly `Tensor.rand(shape, generator: &g) < 1 - p` (Float comparison of the
    /// 24-bit uniform with `1 - p` rounded to Float) for the generator value on entry, and the
    /// generator advances by ceil(count / 4) blocks, as `rand` would. p = 0 returns `self` and
    /// p = 1 returns zeros (gradient zero); neither consumes any blocks (as PyTorch's dropout
    /// draws nothing in those cases). Call it only in training; there is no separate train flag.
    public func dropout(probability p: Float, generator: inout RandomGenerator) -> Tensor {
        precondition(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got \(p)")
        if p == 0 { return self }
        if p == 1 {
            return Tensor.zeros(shape).recordedComposed("dropout", [self]) { g in [Tensor.zeros(g.shape)] }
        }
        let keep = 1 - p, scale = 1 / (1 - p)
        let snapshot = generator
        let n = count
        generator.skip(blocks: UInt64((n + 3) / 4))
        let out = Engine.backend.dropout(self, generator: snapshot, keep: keep, scale: scale)
        return out.recordedComposed("dropout", [self]) { g in
            [g.maskedDropout(generator: snapshot, keep: keep, scale: scale)]
        }
    }
}

extension CPUBackend {
    public func dropout(_ x: Tensor, generator: RandomGenerator, keep: Float, scale: Float) -> Tensor {
        let out = Tensor.uninitialized(x.shape)
        dropoutKernel(x.pointer, out.pointer, count: x.count, generator: generator, keep: keep, scale: scale)
        return out
    }
}
