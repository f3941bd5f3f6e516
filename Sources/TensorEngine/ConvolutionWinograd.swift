// Winograd F(4x4, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for 3x3 kernels with stride 1: each 4x4 output tile comes from a 6x6 input tile
// with 36 multiplies per (input, output) channel pair instead of 144, done as 36 matrix products
// (one per point of the 6x6 transform domain) through BLAS.
//
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        (forward, per tile and channel pair)
//   dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B) ] G   (weight gradient; the exact transpose of the above)
//
// Layouts: tiles are numbered along "tile rows" (image, tile y) and x; channels run fastest and are
// padded to a multiple of 4, so every transform works on SIMD4 vectors of 4 channels:
//   V[36][tiles][Cp]  input transforms      U[36][Cin][Cout]  weight transforms
//   M[36][tiles][Op]  products V·U          (Op, Cp: channel counts rounded up to 4)
// Work is split into chunks of whole tile rows fixed by the geometry alone (never by the thread
// count), so results are identical for any `Engine.threads`.
//
// Accuracy: F(4x4,3x3) in Float32 loses about one decimal digit against a direct sum. Measured
// against the Double reference (64-256 channels, unit-variance data): RMS error 2-3e-6 of the
// output's RMS (im2col: 3e-7), largest error about 1e-5 of the largest output. cuDNN and oneDNN
// make the same trade with the same transform; `Conv2dAlgorithm.im2col` avoids it.

typealias F4 = SIMD4<Float>

@inline(__always) private func load4(_ p: UnsafePointer<Float>) -> F4 {
    UnsafeRawPointer(p).loadUnaligned(as: F4.self)
}
@inline(__always) private func load4(_ p: UnsafeMutablePointer<Float>) -> F4 {
    UnsafeRawPointer(p).loadUnaligned(as: F4.self)
}
@inline(__always) private func store4(_ v: F4, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F4.self)
}

@inline(__always) private func loadV<V: SIMD>(_ p: UnsafeMutablePointer<Float>) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}
@inline(__always) private func storeV<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Bᵀ d for a 6-vector d, on 4 or 8 channels at once (the same arithmetic per lane either way).
@inline(__always)
private func inputTransform6<V: SIMD>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V)
    -> (V, V, V, V, V, V) where V.Scalar == Float {
    let a = d3 + d4 - 4 * (d1 + d2)          // -4d1 - 4d2 + d3 + d4
    let b = d4 - d3 + 4 * (d1 - d2)          //  4d1 - 4d2 - d3 + d4
    let e = d4 - d2, f = 2 * (d3 - d1)
    return (4 * d0 - 5 * d2 + d4, a, b, e + f, e - f, 4 * d1 - 5 * d3 + d5)
}

/// Aᵀ m for a 6-vector m (4 outputs), on 4 or 8 channels at once.
@inline(__always)
private func outputTransform6<V: SIMD>(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V)
    -> (V, V, V, V) where V.Scalar == Float {
    let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
    return (m0 + p12 + p34, d12 + 2 * d34, p12 + 4 * p34, d12 + 8 * d34 + m5)
}

/// The transpose of the 4x4 matrix with rows a, b, c, d (written so that LLVM emits unpack and
/// move shuffles rather than lane-by-lane inserts).
@inline(__always)
private func transpose4x4(_ a: F4, _ b: F4, _ c: F4, _ d: F4) -> (F4, F4, F4, F4) {
    let ab0 = F4(a[0], b[0], a[1], b[1]), ab1 = F4(a[2], b[2], a[3], b[3])
    let cd0 = F4(c[0], d[0], c[1], d[1]), cd1 = F4(c[2], d[2], c[3], d[3])
    return (F4(ab0[0], ab0[1], cd0[0], cd0[1]), F4(ab0[2], ab0[3], cd0[2], cd0[3]),
            F4(ab1[0], ab1[1], cd1[0], cd1[1]), F4(ab1[2], ab1[3], cd1[2], cd1[3]))
}

/// A y for a 4-vector y (6 outputs): the transpose of `outputTransform6`.
@inline(__always)
private func gradOutputTransform4(_ y0: F4, _ y1: F4, _ y2: F4, _ y3: F4) -> (F4, F4, F4, F4, F4, F4) {
    let a = y0 + y2, b = y1 + y3, c = y0 + 4 * y2, d = 2 * y1 + 8 * y3
    return (y0, a + b, a - b, c + d, c - d, y3)
}

/// Winograd F(4x4, 3x3) kernels. Internal; `Convolution.swift` decides when they run.
enum Winograd {
    /// Floats of one chunk's transforms (V and M, 512 KB), so they stay in the L2 cache between the
    /// transform and product steps. Measured on the benchmark shapes: 4x larger chunks were up to
    /// 25% slower, 2x smaller ones the same.
    static let chunkBudget = 1 << 17

    /// Tiles per chunk so that a chunk's transforms (36 x tiles x channels in and out) stay near
    /// `scale * chunkBudget` floats, within [16, 256 * scale].
    static func targetTiles(cin: Int, cout: Int, scale: Int = 1) -> Int {
        Swift.min(256 * scale, Swift.max(16, scale * chunkBudget / (36 * (roundUp4(cin) + roundUp4(cout)))))
    }

    static func roundUp4(_ x: Int) -> Int { (x + 3) & ~3 }

    /// Whether F(4x4,3x3) applies (3x3 kernel, stride 1, one group) and pays for this geometry.
    static func applies(_ g: Conv2dGeometry) -> Bool {
        guard g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.groups == 1 else { return false }
        // Narrow channel counts make the 36 products too thin for BLAS (im2col does better).
        guard g.c >= 8 && g.o >= 8 else { return false }
        // Multiplies per channel pair: direct 9 per output pixel, Winograd 36 per (partly used) tile.
        // Decided per image, never by the batch size: an image's output must not depend on how
        // many others share its call (cross-image batching relies on it). Batch 1 of a tiny image
        // with many channels pays the weight transform for little saving; that case is rare.
        let tiles = ((g.ho + 3) / 4) * ((g.wo + 3) / 4)
        let direct = 9 * g.ho * g.wo, winograd = 36 * tiles
        return direct >= 2 * winograd
    }

    /// How a convolution's tile rows are split into chunks.
    struct Plan {
        let n: Int, cin: Int, hin: Int, win: Int
        let cout: Int, hout: Int, wout: Int
        let py: Int, px: Int          // input row/column of output (0, 0) is (-py, -px)
        let tilesY: Int, tilesX: Int
        let cp: Int, op: Int          // channel counts rounded up to 4
        let wp: Int                   // packed input width: 4 * tilesX + 2
        let rows: Int                 // tile rows in all: n * tilesY
        let rowsPerChunk: Int
        var chunks: Int { (rows + rowsPerChunk - 1) / rowsPerChunk }
        var maxTiles: Int { rowsPerChunk * tilesX }
        /// Rows of every forward product (`maxTiles` rounded up to 16): each product has the same
        /// shape whatever the chunk, so BLAS takes the same path (its small-matrix kernels round
        /// differently) and a tile's result does not depend on the batch. Rows past a chunk's
        /// tiles hold stale values and are never read.
        var productRows: Int { (maxTiles + 15) & ~15 }
        /// Floats between transform points in V and M (Y): one cache line more than the data, so
        /// the 36 planes do not all fall on the same cache sets when the size is a power of two.
        var vStride: Int { productRows * cp + 16 }
        var mStride: Int { productRows * op + 16 }

        init(n: Int, cin: Int, hin: Int, win: Int, cout: Int, hout: Int, wout: Int, py: Int, px: Int,
             targetTiles: Int? = nil, minChunks: Int = 4) {
            self.n = n; self.cin = cin; self.hin = hin; self.win = win
            self.cout = cout; self.hout = hout; self.wout = wout; self.py = py; self.px = px
            tilesY = (hout + 3) / 4; tilesX = (wout + 3) / 4
            cp = Winograd.roundUp4(cin); op = Winograd.roundUp4(cout)
            wp = 4 * tilesX + 2
            rows = n * tilesY
            var rpc = Swift.max(1, (targetTiles ?? Winograd.targetTiles(cin: cin, cout: cout)) / tilesX)
            // The forward chunks (`minChunks` 0) have a size fixed by the geometry, never by the
            // batch (see `productRows`); at a batch of one or two small images that leaves a
            // single chunk. The gradients' are split further so that threads can share the work.
            if minChunks > 0 { rpc = Swift.min(rpc, Swift.max(1, (rows + minChunks - 1) / minChunks)) }
            rowsPerChunk = rpc
        }
    }

    // MARK: Weight transforms

    /// Floats between transform points of U and dU: one cache line more than cin * cout, so the
    /// 36 planes do not share cache sets when cin * cout is a multiple of 1024 (that made the
    /// transform of a 512x512 kernel 10x slower).
    static func weightStride(cin: Int, cout: Int) -> Int { cin * cout + 16 }

    /// Floats for U (or dU) and the transforms' scratch together.
    static func weightScratchCount(cin: Int, cout: Int) -> Int { 45 * weightStride(cin: cin, cout: cout) }

    /// U[36][cin][cout] = G g Gᵀ for each channel pair, from a [cout][cin][3][3] weight; with
    /// `flipped`, from a [cin][cout][3][3] weight rotated by 180 degrees (the kernel of the input
    /// gradient). Transform points lie `weightStride` apart in `u`; `scratch` holds 9 * weightStride floats.
    static func transformWeights(_ weight: UnsafePointer<Float>, cin: Int, cout: Int, flipped: Bool,
                                 into u: UnsafeMutablePointer<Float>, scratch wt: UnsafeMutablePointer<Float>) {
        let pairs = cin * cout, ps = weightStride(cin: cin, cout: cout)
        // wt[k][ci][co]: tap k of the kernel from input channel ci to output channel co.
        parallelFor(cin, grain: Swift.max(1, 8192 / Swift.max(1, 9 * cout))) { range in
            for ci in range {
                for co in 0..<cout {
                    let src = flipped ? weight + (ci * cout + co) * 9 : weight + (co * cin + ci) * 9
                    let p = ci * cout + co
                    if flipped { for k in 0..<9 { wt[k * ps + p] = src[8 - k] } }
                    else { for k in 0..<9 { wt[k * ps + p] = src[k] } }
                }
            }
        }
        // Four pairs at a time: t = G g (6x3), U = t Gᵀ (6x6).
        parallelFor((pairs + 3) / 4, grain: 1024) { range in
            for q in range {
                let p = 4 * q, lanes = Swift.min(4, pairs - p)
                @inline(__always) func g(_ k: Int) -> F4 {
                    if lanes == 4 { return load4(wt + k * ps + p) }
                    var v = F4(); for l in 0..<lanes { v[l] = wt[k * ps + p + l] }; return v
                }
                let c0 = kernelTransform3(g(0), g(3), g(6))
                let c1 = kernelTransform3(g(1), g(4), g(7))
                let c2 = kernelTransform3(g(2), g(5), g(8))
                @inline(__always) func put(_ i: Int, _ a: F4, _ b: F4, _ c: F4) {
                    let r = kernelTransform3(a, b, c)
                    let d = u + i * 6 * ps + p
                    if lanes == 4 {
                        store4(r.0, d); store4(r.1, d + ps); store4(r.2, d + 2 * ps)
                        store4(r.3, d + 3 * ps); store4(r.4, d + 4 * ps); store4(r.5, d + 5 * ps)
                    } else {
                        for l in 0..<lanes {
                            d[l] = r.0[l]; d[ps + l] = r.1[l]; d[2 * ps + l] = r.2[l]
                            d[3 * ps + l] = r.3[l]; d[4 * ps + l] = r.4[l]; d[5 * ps + l] = r.5[l]
                        }
                    }
                }
                put(0, c0.0, c1.0, c2.0); put(1, c0.1, c1.1, c2.1); put(2, c0.2, c1.2, c2.2)
                put(3, c0.3, c1.3, c2.3); put(4, c0.4, c1.4, c2.4); put(5, c0.5, c1.5, c2.5)
            }
        }
    }

    /// G g for a 3-vector g (6 outputs).
    @inline(__always)
    private static func kernelTransform3(_ g0: F4, _ g1: F4, _ g2: F4) -> (F4, F4, F4, F4, F4, F4) {
        let a = g0 + g2, b = g0 * (1.0 / 24.0) + g2 * (1.0 / 6.0), c = g1 * (1.0 / 12.0)
        return (g0 * 0.25, (a + g1) * (-1.0 / 6.0), (a - g1) * (-1.0 / 6.0), b + c, b - c, g2)
    }

    /// Gᵀ d for a 6-vector d (3 outputs): the transpose of `kernelTransform3`.
    @inline(__always)
    private static func kernelGradientTransform6(_ d0: F4, _ d1: F4, _ d2: F4, _ d3: F4, _ d4: F4, _ d5: F4)
        -> (F4, F4, F4) {
        let p12 = d1 + d2, p34 = d3 + d4
        return (d0 * 0.25 - p12 * (1.0 / 6.0) + p34 * (1.0 / 24.0),
                (d2 - d1) * (1.0 / 6.0) + (d3 - d4) * (1.0 / 12.0),
                (p34 - p12) * (1.0 / 6.0) + d5)
    }

    /// dW[cout][cin][3][3] = Gᵀ dU G from dU[36][cin][cout] (points `weightStride` apart).
    /// `scratch` holds 9 * weightStride floats.
    static func weightGradientFromTransform(_ du: UnsafePointer<Float>, cin: Int, cout: Int,
                                            into dw: UnsafeMutablePointer<Float>,
                                            scratch wt: UnsafeMutablePointer<Float>) {
        let pairs = cin * cout, ps = weightStride(cin: cin, cout: cout)
        parallelFor((pairs + 3) / 4, grain: 1024) { range in
            for q in range {
                let p = 4 * q, lanes = Swift.min(4, pairs - p)
                @inline(__always) func d(_ k: Int) -> F4 {
                    if lanes == 4 { return load4(du + k * ps + p) }
                    var v = F4(); for l in 0..<lanes { v[l] = du[k * ps + p + l] }; return v
                }
                // r[i] = (dU G)[i][*] (rows i), then dg[*][kx] = Gᵀ r[*][kx].
                let r0 = kernelGradientTransform6(d(0), d(1), d(2), d(3), d(4), d(5))
                let r1 = kernelGradientTransform6(d(6), d(7), d(8), d(9), d(10), d(11))
                let r2 = kernelGradientTransform6(d(12), d(13), d(14), d(15), d(16), d(17))
                let r3 = kernelGradientTransform6(d(18), d(19), d(20), d(21), d(22), d(23))
                let r4 = kernelGradientTransform6(d(24), d(25), d(26), d(27), d(28), d(29))
                let r5 = kernelGradientTransform6(d(30), d(31), d(32), d(33), d(34), d(35))
                let k0 = kernelGradientTransform6(r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)  // column kx = 0
                let k1 = kernelGradientTransform6(r0.1, r1.1, r2.1, r3.1, r4.1, r5.1)
                let k2 = kernelGradientTransform6(r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)
                @inline(__always) func put(_ k: Int, _ v: F4) {
                    if lanes == 4 { store4(v, wt + k * ps + p) } else { for l in 0..<lanes { wt[k * ps + p + l] = v[l] } }
                }
                put(0, k0.0); put(1, k1.0); put(2, k2.0)
                put(3, k0.1); put(4, k1.1); put(5, k2.1)
                put(6, k0.2); put(7, k1.2); put(8, k2.2)
            }
        }
        // wt[k][ci][co] -> dw[co][ci][k].
        parallelFor(cout, grain: Swift.max(1, 8192 / Swift.max(1, 9 * cin))) { range in
            for co in range {
                for ci in 0..<cin {
                    let p = ci * cout + co
                    let dst = dw + (co * cin + ci) * 9
                    for k in 0..<9 { dst[k] = wt[k * ps + p] }
                }
            }
        }
    }

    // MARK: Packing

    /// Copies `rowsOut` rows of one image, starting at input row `y0`, into `dst[rowsOut][width][cpad]`
    /// (channels fastest), reading column `x - px` for packed column x; zero outside the image and in
    /// the padding channels.
    @inline(__always)
    static func packRows(_ src: UnsafePointer<Float>, channels: Int, height: Int, width srcW: Int,
                         y0: Int, rowsOut: Int, px: Int, width: Int, cpad: Int,
                         into dst: UnsafeMutablePointer<Float>) {
        dst.update(repeating: 0, count: rowsOut * width * cpad)
        let xLo = Swift.max(0, px), xHi = Swift.min(width, srcW + px)
        if xLo >= xHi { return }
        let plane = height * srcW
        let r0 = Swift.max(0, -y0), r1 = Swift.min(rowsOut, height - y0)
        if r0 >= r1 { return }
        var c = 0
        // Blocks of 4 channels: each plane is read as one run of rows; 4x4 blocks are transposed in registers.
        while c + 4 <= channels {
            for r in r0..<r1 {
                let s0 = src + c * plane + (y0 + r) * srcW - px
                let s1 = s0 + plane, s2 = s1 + plane, s3 = s2 + plane
                let drow = dst + r * width * cpad + c
                var x = xLo
                while x + 4 <= xHi {
                    let a = load4(s0 + x), b = load4(s1 + x), e = load4(s2 + x), f = load4(s3 + x)
                    store4(F4(a[0], b[0], e[0], f[0]), drow + x * cpad)
                    store4(F4(a[1], b[1], e[1], f[1]), drow + (x + 1) * cpad)
                    store4(F4(a[2], b[2], e[2], f[2]), drow + (x + 2) * cpad)
                    store4(F4(a[3], b[3], e[3], f[3]), drow + (x + 3) * cpad)
                    x += 4
                }
                while x < xHi {
                    store4(F4(s0[x], s1[x], s2[x], s3[x]), drow + x * cpad)
                    x += 1
                }
            }
            c += 4
        }
        while c < channels {
            for r in r0..<r1 {
                let s0 = src + c * plane + (y0 + r) * srcW - px
                let drow = dst + r * width * cpad + c
                for x in xLo..<xHi { drow[x * cpad] = s0[x] }
            }
            c += 1
        }
    }

    // MARK: Forward

    /// out[n][cout][hout][wout] = convolution of x[n][cin][hin][win] with the kernel whose
    /// transform is `u` (see `transformWeights`), output (0,0) reading input (-py, -px), plus bias.
    static func convolve(_ x: UnsafePointer<Float>, _ p: Plan, u: UnsafePointer<Float>,
                         bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        let chunks = p.chunks
        let workers = Swift.min(Engine.threads, chunks)
        let packSize = 6 * p.wp * p.cp
        let vSize = 36 * p.vStride, mSize = 36 * p.mStride
        let perWorker = packSize + vSize + mSize + 4 * p.op + 36 * 8
        withScratch(perWorker * workers) { scratch in
            // M's padding lanes (cout up to op) hold stale values: transformed but never stored.
            runOnWorkers(chunks, workers: workers) { chunk, worker in
                let base = scratch + worker * perWorker
                let pack = base, v = pack + packSize, m = v + vSize, biasPad = m + mSize, tmp = biasPad + p.op
                for o in 0..<p.op { biasPad[o] = o < p.cout ? bias?[o] ?? 0 : 0 }
                let row0 = chunk * p.rowsPerChunk, row1 = Swift.min(p.rows, row0 + p.rowsPerChunk)
                let tiles = (row1 - row0) * p.tilesX
                // 1. Input transforms.
                for row in row0..<row1 {
                    let img = row / p.tilesY, ty = row % p.tilesY
                    packRows(x + img * p.cin * p.hin * p.win, channels: p.cin, height: p.hin, width: p.win,
                             y0: 4 * ty - p.py, rowsOut: 6, px: p.px, width: p.wp, cpad: p.cp, into: pack)
                    inputTransformRow(pack, p, tileBase: (row - row0) * p.tilesX, tiles: tiles, into: v, tmp: tmp)
                }
                // 2. One product per transform point: M_k[tiles, cout] = V_k[tiles, cin] U_k[cin, cout].
                for k in 0..<36 {
                    sgemm(transA: false, transB: false, m: p.productRows, n: p.cout, k: p.cin,
                          a: v + k * p.vStride, lda: p.cp, b: u + k * weightStride(cin: p.cin, cout: p.cout), ldb: p.cout,
                          c: m + k * p.mStride, ldc: p.op)
                }
                // 3. Output transforms.
                for row in row0..<row1 {
                    let img = row / p.tilesY, ty = row % p.tilesY
                    outputTransformRow(m, p, tileBase: (row - row0) * p.tilesX, tiles: tiles, bias: biasPad,
                                       out: out + img * p.cout * p.hout * p.wout, ty: ty, tmp: tmp)
                }
            }
        }
    }

    /// Bᵀ d B for the tiles of one packed tile row (pack[6][wp][cp]), written to V[k][tileBase + tx][*].
    /// `tmp` holds 36 * 8 floats. Eight channels at a time when cp allows (AVX), else four.
    @inline(__always)
    static func inputTransformRow(_ pack: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                  into v: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        if p.cp % 8 == 0 {
            inputTransformRow(SIMD8<Float>.self, pack, p, tileBase: tileBase, into: v, tmp: tmp)
        } else {
            inputTransformRow(F4.self, pack, p, tileBase: tileBase, into: v, tmp: tmp)
        }
    }

    @inline(__always)
    private static func inputTransformRow<V: SIMD>(_: V.Type, _ pack: UnsafeMutablePointer<Float>, _ p: Plan,
                                                   tileBase: Int, into v: UnsafeMutablePointer<Float>,
                                                   tmp: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        let w = V.scalarCount
        let cp = p.cp, rs = p.wp * cp        // row stride of the pack
        let ks = p.vStride                   // stride between transform points in V
        for tx in 0..<p.tilesX {
            var c = 0
            while c < cp {
                let s = pack + 4 * tx * cp + c
                // Columns: tmp[i][j] = (Bᵀ d)[i][j].
                for j in 0..<6 {
                    let sj = s + j * cp
                    let t: (V, V, V, V, V, V) = inputTransform6(loadV(sj), loadV(sj + rs), loadV(sj + 2 * rs),
                                                                loadV(sj + 3 * rs), loadV(sj + 4 * rs), loadV(sj + 5 * rs))
                    storeV(t.0, tmp + (0 * 6 + j) * w); storeV(t.1, tmp + (1 * 6 + j) * w)
                    storeV(t.2, tmp + (2 * 6 + j) * w); storeV(t.3, tmp + (3 * 6 + j) * w)
                    storeV(t.4, tmp + (4 * 6 + j) * w); storeV(t.5, tmp + (5 * 6 + j) * w)
                }
                // Rows: V[i*6 + j] = (Bᵀ d B)[i][j].
                let d = v + (tileBase + tx) * cp + c
                for i in 0..<6 {
                    let r = tmp + i * 6 * w
                    let t: (V, V, V, V, V, V) = inputTransform6(loadV(r), loadV(r + w), loadV(r + 2 * w),
                                                                loadV(r + 3 * w), loadV(r + 4 * w), loadV(r + 5 * w))
                    let di = d + i * 6 * ks
                    storeV(t.0, di); storeV(t.1, di + ks); storeV(t.2, di + 2 * ks)
                    storeV(t.3, di + 3 * ks); storeV(t.4, di + 4 * ks); storeV(t.5, di + 5 * ks)
                }
                c += w
            }
        }
    }

    /// Aᵀ m A plus bias for the tiles of one tile row, from M[k][tileBase + tx][*], written into the
    /// image `out` [cout][hout][wout] at tile row `ty` (the parts inside the image). `tmp` holds
    /// 24 * 8 floats; `bias` holds op floats. Eight channels at a time when op allows, else four.
    @inline(__always)
    static func outputTransformRow(_ m: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                   bias: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, ty: Int,
                                   tmp: UnsafeMutablePointer<Float>) {
        if p.op % 8 == 0 {
            outputTransformRow(SIMD8<Float>.self, m, p, tileBase: tileBase, bias: bias, out: out, ty: ty, tmp: tmp)
        } else {
            outputTransformRow(F4.self, m, p, tileBase: tileBase, bias: bias, out: out, ty: ty, tmp: tmp)
        }
    }

    @inline(__always)
    private static func outputTransformRow<V: SIMD>(_: V.Type, _ m: UnsafeMutablePointer<Float>, _ p: Plan,
                                                    tileBase: Int, bias: UnsafeMutablePointer<Float>,
                                                    out: UnsafeMutablePointer<Float>, ty: Int,
                                                    tmp: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        let w = V.scalarCount
        let op = p.op, ks = p.mStride
        let plane = p.hout * p.wout
        let rowsValid = Swift.min(4, p.hout - 4 * ty)
        for tx in 0..<p.tilesX {
            let colsValid = Swift.min(4, p.wout - 4 * tx)
            var o = 0
            while o < op {
                let s = m + (tileBase + tx) * op + o
                // Columns: tmp[i][j] = (Aᵀ m)[i][j], i < 4.
                for j in 0..<6 {
                    let sj = s + j * ks
                    let t: (V, V, V, V) = outputTransform6(loadV(sj), loadV(sj + 6 * ks), loadV(sj + 12 * ks),
                                                           loadV(sj + 18 * ks), loadV(sj + 24 * ks), loadV(sj + 30 * ks))
                    storeV(t.0, tmp + (0 * 6 + j) * w); storeV(t.1, tmp + (1 * 6 + j) * w)
                    storeV(t.2, tmp + (2 * 6 + j) * w); storeV(t.3, tmp + (3 * 6 + j) * w)
                }
                let b: V = loadV(bias + o)
                let lanes = Swift.min(w, p.cout - o)
                for i in 0..<rowsValid {
                    let r = tmp + i * 6 * w
                    let y: (V, V, V, V) = outputTransform6(loadV(r), loadV(r + w), loadV(r + 2 * w),
                                                           loadV(r + 3 * w), loadV(r + 4 * w), loadV(r + 5 * w))
                    let y0 = y.0 + b, y1 = y.1 + b, y2 = y.2 + b, y3 = y.3 + b
                    let dst = out + o * plane + (4 * ty + i) * p.wout + 4 * tx
                    if colsValid == 4 && lanes == w {
                        // Channel l's 4 columns, one store each: 4x4 transposes of y0...y3.
                        var g = 0
                        while g < w {
                            let t = transpose4x4(F4(y0[g], y0[g + 1], y0[g + 2], y0[g + 3]),
                                                 F4(y1[g], y1[g + 1], y1[g + 2], y1[g + 3]),
                                                 F4(y2[g], y2[g + 1], y2[g + 2], y2[g + 3]),
                                                 F4(y3[g], y3[g + 1], y3[g + 2], y3[g + 3]))
                            let d = dst + g * plane
                            store4(t.0, d); store4(t.1, d + plane); store4(t.2, d + 2 * plane); store4(t.3, d + 3 * plane)
                            g += 4
                        }
                    } else if colsValid == 4 {
                        for l in 0..<lanes { store4(F4(y0[l], y1[l], y2[l], y3[l]), dst + l * plane) }
                    } else {
                        for l in 0..<lanes {
                            let d = dst + l * plane
                            d[0] = y0[l]
                            if colsValid > 1 { d[1] = y1[l] }
                            if colsValid > 2 { d[2] = y2[l] }
                        }
                    }
                }
                o += w
            }
        }
    }

    // MARK: Weight gradient

    /// dU[36][cin][cout] = sum over tiles of (Bᵀ x B)ᵀ (A dy Aᵀ), the transform-domain weight gradient
    /// of `convolve` with plan `p` (x [n][cin][hin][win], gradOut [n][cout][hout][wout]).
    /// Chunks run in order; within a chunk, transforms are split over tile rows and the 36 products
    /// (each accumulating into its own dU_k) over workers, so the sums' order is fixed.
    static func weightGradientTransform(_ x: UnsafePointer<Float>, _ gradOut: UnsafePointer<Float>, _ p: Plan,
                                        into du: UnsafeMutablePointer<Float>) {
        let threads = Engine.threads
        let workersT = Swift.min(threads, p.rowsPerChunk)
        let packSize = 6 * p.wp * p.cp + 4 * p.wp * p.op + 36 * 8
        let vSize = 36 * p.vStride, ySize = 36 * p.mStride
        withScratch(packSize * workersT + vSize + ySize) { scratch in
            let v = scratch, yhat = v + vSize, packs = yhat + ySize
            for chunk in 0..<p.chunks {
                let row0 = chunk * p.rowsPerChunk, row1 = Swift.min(p.rows, row0 + p.rowsPerChunk)
                let tiles = (row1 - row0) * p.tilesX
                runOnWorkers(row1 - row0, workers: workersT) { r, worker in
                    let pack = packs + worker * packSize, gpack = pack + 6 * p.wp * p.cp
                    let tmp = gpack + 4 * p.wp * p.op
                    let row = row0 + r
                    let img = row / p.tilesY, ty = row % p.tilesY
                    packRows(x + img * p.cin * p.hin * p.win, channels: p.cin, height: p.hin, width: p.win,
                             y0: 4 * ty - p.py, rowsOut: 6, px: p.px, width: p.wp, cpad: p.cp, into: pack)
                    inputTransformRow(pack, p, tileBase: r * p.tilesX, tiles: tiles, into: v, tmp: tmp)
                    packRows(gradOut + img * p.cout * p.hout * p.wout, channels: p.cout, height: p.hout,
                             width: p.wout, y0: 4 * ty, rowsOut: 4, px: 0, width: p.wp, cpad: p.op, into: gpack)
                    gradOutputTransformRow(gpack, p, tileBase: r * p.tilesX, tiles: tiles, into: yhat, tmp: tmp)
                }
                let beta: Float = chunk == 0 ? 0 : 1
                runOnWorkers(36, workers: Swift.min(threads, 36)) { k, _ in
                    sgemm(transA: true, transB: false, m: p.cin, n: p.cout, k: tiles,
                          a: v + k * p.vStride, lda: p.cp, b: yhat + k * p.mStride, ldb: p.op,
                          beta: beta, c: du + k * weightStride(cin: p.cin, cout: p.cout), ldc: p.cout)
                }
            }
        }
    }

    /// A dy Aᵀ for the tiles of one packed gradient tile row (gpack[4][wp][op]), to Y[k][tileBase + tx][*].
    @inline(__always)
    static func gradOutputTransformRow(_ gpack: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                       into yhat: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        let op = p.op, rs = p.wp * op, ks = p.mStride
        for tx in 0..<p.tilesX {
            var o = 0
            while o < op {
                let s = gpack + 4 * tx * op + o
                // Columns j < 4: tmp[i][j] = (A dy)[i][j], i < 6.
                for j in 0..<4 {
                    let sj = s + j * op
                    let t = gradOutputTransform4(load4(sj), load4(sj + rs), load4(sj + 2 * rs), load4(sj + 3 * rs))
                    store4(t.0, tmp + (0 * 4 + j) * 4); store4(t.1, tmp + (1 * 4 + j) * 4)
                    store4(t.2, tmp + (2 * 4 + j) * 4); store4(t.3, tmp + (3 * 4 + j) * 4)
                    store4(t.4, tmp + (4 * 4 + j) * 4); store4(t.5, tmp + (5 * 4 + j) * 4)
                }
                let d = yhat + (tileBase + tx) * op + o
                for i in 0..<6 {
                    let r = tmp + i * 16
                    let t = gradOutputTransform4(load4(r), load4(r + 4), load4(r + 8), load4(r + 12))
                    let di = d + i * 6 * ks
                    store4(t.0, di); store4(t.1, di + ks); store4(t.2, di + 2 * ks)
                    store4(t.3, di + 3 * ks); store4(t.4, di + 4 * ks); store4(t.5, di + 5 * ks)
                }
                o += 4
            }
        }
    }
}
