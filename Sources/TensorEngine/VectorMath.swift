// Small vector helpers shared by the fused kernels (softmax, normalisation, attention): a
// vectorisable exp and row reductions with fixed summation order (so results never depend on the
// thread count). All are internal and `@inline(__always)`, so they specialise into each kernel.

/// Rows per chunk so a chunk holds about `elements` values.
@inline(__always)
func rowGrain(_ rowLength: Int, elements: Int = 16384) -> Int { Swift.max(1, elements / Swift.max(rowLength, 1)) }

/// e^x for Float without a library call; the loop `dst[i] = fastExp(src[i])` auto-vectorises
/// (about 3x faster than glibc's `expf` here). Relative error about 2.5e-7 (2 ulp); exactly 0 below
/// -87.34 (no denormals); NaN stays NaN; +inf and anything above 88.3 give e^88.3 (about 2.2e38),
/// which is fine for the kernels that use it: they pass x - max <= 0, or -x to form a sigmoid.
@inline(__always)
func fastExp(_ x: Float) -> Float {
    let lo: Float = -87.33654, hi: Float = 88.3
    let xl = x < lo ? lo : x
    let xc = xl > hi ? hi : xl
    // x = n ln2 + r with n integral and |r| <= ln2 / 2; adding 1.5 * 2^23 rounds to an integer
    // held in the low mantissa bits (no float-to-int conversion, which would not vectorise).
    let magic: Float = 12582912
    let t = xc * 1.44269504088896341 + magic
    let n = t - magic
    let r = (xc - n * 0.693145751953125) - n * 1.428606765330187045e-06
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let scale = Float(bitPattern: (t.bitPattern &- magic.bitPattern &+ 127) << 23)
    let v = p * scale
    return x < lo ? 0 : (x == x ? v : x)
}

/// x * sigmoid(x) through `fastExp`.
@inline(__always)
func fastSiLU(_ x: Float) -> Float { x / (1 + fastExp(-x)) }

/// sigmoid(x) through `fastExp`.
@inline(__always)
func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

@inline(__always)
func loadFloat8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Sum of p[0..<n] in Float, eight lanes at a time (fixed order).
@inline(__always)
func sumFloat(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        a0 += loadFloat8(p + i)
        a1 += loadFloat8(p + i + 8)
        i += 16
    }
    var s = (a0 + a1).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Largest of p[0..<n]; -inf when n is 0. NaNs may be skipped (callers see them through sums).
@inline(__always)
func maxFloat(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = -Float.infinity
    var i = 0
    if n >= 8 {
        var v = SIMD8<Float>(repeating: -.infinity)
        while i + 8 <= n {
            // A compare and blend; the standard library's pointwiseMax is not inlined here and
            // went lane by lane (5% of the U-Net forward, in attention's softmax).
            let x = loadFloat8(p + i)
            v.replace(with: x, where: x .> v)
            i += 8
        }
        m = v.max()
    }
    while i < n { if p[i] > m { m = p[i] }; i += 1 }
    return m
}

/// Sum of a[i] * b[i] in Float, eight lanes at a time (fixed order).
@inline(__always)
func dotFloat(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        acc += loadFloat8(a + i) * loadFloat8(b + i)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// Sum of p[0..<n] accumulated in Double (fixed order). Four independent accumulators of four
/// lanes: one chain of Double adds is latency-bound (measured: the group norm statistics took a
/// third of group norm's time with two).
@inline(__always)
func sumDouble(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>(), a2 = SIMD4<Double>(), a3 = SIMD4<Double>()
    var i = 0
    while i + 16 <= n {
        let v = loadFloat8(p + i), w = loadFloat8(p + i + 8)
        a0 += SIMD4<Double>(v.lowHalf)
        a1 += SIMD4<Double>(v.highHalf)
        a2 += SIMD4<Double>(w.lowHalf)
        a3 += SIMD4<Double>(w.highHalf)
        i += 16
    }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += Double(p[i]); i += 1 }
    return s
}

/// Sum of (p[i] - mean)^2 accumulated in Double (fixed order, four accumulators as `sumDouble`):
/// the second pass of a two-pass variance.
@inline(__always)
func sumSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, mean: Double) -> Double {
    let m = SIMD4<Double>(repeating: mean)
    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>(), a2 = SIMD4<Double>(), a3 = SIMD4<Double>()
    var i = 0
    while i + 16 <= n {
        let v = loadFloat8(p + i), w = loadFloat8(p + i + 8)
        let d0 = SIMD4<Double>(v.lowHalf) - m, d1 = SIMD4<Double>(v.highHalf) - m
        let d2 = SIMD4<Double>(w.lowHalf) - m, d3 = SIMD4<Double>(w.highHalf) - m
        a0 += d0 * d0
        a1 += d1 * d1
        a2 += d2 * d2
        a3 += d3 * d3
        i += 16
    }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { let d = Double(p[i]) - mean; s += d * d; i += 1 }
    return s
}

/// (sum of g[i], sum of g[i] * (x[i] - mean)) accumulated in Double (fixed order): the two
/// reductions a normalisation backward needs.
@inline(__always)
func sumAndCenteredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                       mean: Double) -> (Double, Double) {
    let m = SIMD4<Double>(repeating: mean)
    var s0 = SIMD4<Double>(), s1 = SIMD4<Double>(), d0 = SIMD4<Double>(), d1 = SIMD4<Double>()
    var i = 0
    while i + 8 <= n {
        let gv = loadFloat8(g + i), xv = loadFloat8(x + i)
        let gl = SIMD4<Double>(gv.lowHalf), gh = SIMD4<Double>(gv.highHalf)
        s0 += gl
        s1 += gh
        d0 += gl * (SIMD4<Double>(xv.lowHalf) - m)
        d1 += gh * (SIMD4<Double>(xv.highHalf) - m)
        i += 8
    }
    var s = (s0 + s1).sum(), d = (d0 + d1).sum()
    while i < n {
        let gi = Double(g[i])
        s += gi
        d += gi * (Double(x[i]) - mean)
        i += 1
    }
    return (s, d)
}
