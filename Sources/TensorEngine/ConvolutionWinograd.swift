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
// Accuracy: F(4x4,3x3) in Float32 loses about one more decimal digit than a direct convolution
// (errors near 1e-5 relative to the output's scale for unit-scale data), which is the usual
// trade-off (cuDNN and oneDNN use the same transform).

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

/// Bᵀ d for a 6-vector d.
@inline(__always)
private func inputTransform6(_ d0: F4, _ d1: F4, _ d2: F4, _ d3: F4, _ d4: F4, _ d5: F4)
    -> (F4, F4, F4, F4, F4, F4) {
    let a = d3 + d4 - 4 * (d1 + d2)          // -4d1 - 4d2 + d3 + d4
    let b = d4 - d3 + 4 * (d1 - d2)          //  4d1 - 4d2 - d3 + d4
    let e = d4 - d2, f = 2 * (d3 - d1)
    return (4 * d0 - 5 * d2 + d4, a, b, e + f, e - f, 4 * d1 - 5 * d3 + d5)
}

/// Aᵀ m for a 6-vector m (4 outputs).
@inline(__always)
private func outputTransform6(_ m0: F4, _ m1: F4, _ m2: F4, _ m3: F4, _ m4: F4, _ m5: F4)
    -> (F4, F4, F4, F4) {
    let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
    return (m0 + p12 + p34, d12 + 2 * d34, p12 + 4 * p34, d12 + 8 * d34 + m5)
}

/// A y for a 4-vector y (6 outputs): the transpose of `outputTransform6`.
@inline(__always)
private func gradOutputTransform4(_ y0: F4, _ y1: F4, _ y2: F4, _ y3: F4) -> (F4, F4, F4, F4, F4, F4) {
    let a = y0 + y2, b = y1 + y3, c = y0 + 4 * y2, d = 2 * y1 + 8 * y3
    return (y0, a + b, a - b, c + d, c - d, y3)
}

/// Winograd F(4x4, 3x3) kernels. Internal; `Convolution.swift` decides when they run.
enum Winograd {
    /// Tiles of one chunk at most about this many (whole tile rows; at least one row).
    static let targetTilesPerChunk = 256

    static func roundUp4(_ x: Int) -> Int { (x + 3) & ~3 }

    /// Whether F(4x4,3x3) applies (3x3 kernel, stride 1, one group) and pays for this geometry.
    static func applies(_ g: Conv2dGeometry) -> Bool {
        guard g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.groups == 1 else { return false }
        // Narrow channel counts make the 36 products too thin for BLAS (im2col does better).
        guard g.c >= 8 && g.o >= 8 else { return false }
        // Multiplies saved: direct 9*ho*wo against 36 per (partly used) tile.
        let tiles = ((g.ho + 3) / 4) * ((g.wo + 3) / 4)
        return 9 * g.ho * g.wo >= 2 * 36 * tiles
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

        init(n: Int, cin: Int, hin: Int, win: Int, cout: Int, hout: Int, wout: Int, py: Int, px: Int,
             targetTiles: Int = Winograd.targetTilesPerChunk, minChunks: Int = 4) {
            self.n = n; self.cin = cin; self.hin = hin; self.win = win
            self.cout = cout; self.hout = hout; self.wout = wout; self.py = py; self.px = px
            tilesY = (hout + 3) / 4; tilesX = (wout + 3) / 4
            cp = Winograd.roundUp4(cin); op = Winograd.roundUp4(cout)
            wp = 4 * tilesX + 2
            rows = n * tilesY
            var rpc = Swift.max(1, targetTiles / tilesX)
            // Several chunks when there is enough work, so threads can share it.
            rpc = Swift.min(rpc, Swift.max(1, (rows + minChunks - 1) / minChunks))
            rowsPerChunk = rpc
        }
    }

    // MARK: Weight transforms

    /// U[36][cin][cout] = G g Gᵀ for each channel pair, from a [cout][cin][3][3] weight; with
    /// `flipped`, from a [cin][cout][3][3] weight rotated by 180 degrees (the kernel of the input
    /// gradient). `scratch` holds 9 * cin * cout floats.
    static func transformWeights(_ weight: UnsafePointer<Float>, cin: Int, cout: Int, flipped: Bool,
                                 into u: UnsafeMutablePointer<Float>, scratch wt: UnsafeMutablePointer<Float>) {
        let pairs = cin * cout
        // wt[k][ci][co]: tap k of the kernel from input channel ci to output channel co.
        for ci in 0..<cin {
            for co in 0..<cout {
                let src = flipped ? weight + (ci * cout + co) * 9 : weight + (co * cin + ci) * 9
                let p = ci * cout + co
                for k in 0..<9 { wt[k * pairs + p] = src[flipped ? 8 - k : k] }
            }
        }
        parallelFor(pairs, grain: 4096) { range in
            for p in range {
                var t = (Float(0), Float(0), Float(0))
                // tmp[i][kx] = (G g)[i][kx], then U[i][j] = sum_kx tmp[i][kx] G[j][kx].
                for i in 0..<6 {
                    for kx in 0..<3 {
                        let g0 = wt[kx * pairs + p], g1 = wt[(3 + kx) * pairs + p], g2 = wt[(6 + kx) * pairs + p]
                        let v = gTransform(g0, g1, g2, i)
                        switch kx { case 0: t.0 = v; case 1: t.1 = v; default: t.2 = v }
                    }
                    for j in 0..<6 { u[(i * 6 + j) * pairs + p] = gTransform(t.0, t.1, t.2, j) }
                }
            }
        }
    }

    /// Row `i` of G times (g0, g1, g2).
    @inline(__always)
    private static func gTransform(_ g0: Float, _ g1: Float, _ g2: Float, _ i: Int) -> Float {
        switch i {
        case 0: return g0 * 0.25
        case 1: return (g0 + g1 + g2) * (-1.0 / 6.0)
        case 2: return (g0 - g1 + g2) * (-1.0 / 6.0)
        case 3: return g0 * (1.0 / 24.0) + g1 * (1.0 / 12.0) + g2 * (1.0 / 6.0)
        case 4: return g0 * (1.0 / 24.0) - g1 * (1.0 / 12.0) + g2 * (1.0 / 6.0)
        default: return g2
        }
    }

    /// Row `j` of Gᵀ times the 6-vector d (the transpose of `gTransform`).
    @inline(__always)
    private static func gTransposeTransform(_ d: UnsafePointer<Float>, stride s: Int, _ j: Int) -> Float {
        let d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s]
        switch j {
        case 0: return d0 * 0.25 - (d1 + d2) * (1.0 / 6.0) + (d3 + d4) * (1.0 / 24.0)
        case 1: return (d2 - d1) * (1.0 / 6.0) + (d3 - d4) * (1.0 / 12.0)
        default: return (d3 + d4 - d1 - d2) * (1.0 / 6.0) + d5
        }
    }

    /// dW[cout][cin][3][3] = Gᵀ dU G from dU[36][cin][cout]. `scratch` holds 9 * cin * cout floats.
    static func weightGradientFromTransform(_ du: UnsafePointer<Float>, cin: Int, cout: Int,
                                            into dw: UnsafeMutablePointer<Float>,
                                            scratch wt: UnsafeMutablePointer<Float>) {
        let pairs = cin * cout
        parallelFor(pairs, grain: 4096) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 18) { buf in
                let r = buf.baseAddress!
                for p in range {
                    // r[i][kx] = sum_j dU[i][j] G[j][kx]; then dg[ky][kx] = sum_i G[i][ky] r[i][kx].
                    for i in 0..<6 {
                        for kx in 0..<3 { r[i * 3 + kx] = gTransposeTransform(du + (i * 6) * pairs + p, stride: pairs, kx) }
                    }
                    for ky in 0..<3 {
                        for kx in 0..<3 { wt[(ky * 3 + kx) * pairs + p] = gTransposeTransform(r + kx, stride: 3, ky) }
                    }
                }
            }
        }
        // wt[k][ci][co] -> dw[co][ci][k].
        parallelFor(cout, grain: 16) { range in
            for co in range {
                for ci in 0..<cin {
                    let p = ci * cout + co
                    let dst = dw + (co * cin + ci) * 9
                    for k in 0..<9 { dst[k] = wt[k * pairs + p] }
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
        for r in 0..<rowsOut {
            let y = y0 + r
            if y < 0 || y >= height { continue }
            let drow = dst + r * width * cpad
            var c = 0
            while c + 4 <= channels {
                let s0 = src + c * plane + y * srcW - px
                let s1 = s0 + plane, s2 = s1 + plane, s3 = s2 + plane
                for x in xLo..<xHi {
                    store4(F4(s0[x], s1[x], s2[x], s3[x]), drow + x * cpad + c)
                }
                c += 4
            }
            while c < channels {
                let s0 = src + c * plane + y * srcW - px
                for x in xLo..<xHi { drow[x * cpad + c] = s0[x] }
                c += 1
            }
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
        let vSize = 36 * p.maxTiles * p.cp, mSize = 36 * p.maxTiles * p.op
        let perWorker = packSize + vSize + mSize + 4 * p.op + 36 * 4
        withScratch(perWorker * workers) { scratch in
            // Padding lanes of M (never written by BLAS when cout % 4 != 0) are kept at zero.
            if p.op != p.cout { scratch.update(repeating: 0, count: perWorker * workers) }
            runOnWorkers(chunks, workers: workers) { chunk, worker in
                let base = scratch + worker * perWorker
                let pack = base, v = pack + packSize, m = v + vSize, biasPad = m + mSize, tmp = biasPad + p.op
                for o in 0..<p.op { biasPad[o] = (bias != nil && o < p.cout) ? bias![o] : 0 }
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
                    sgemm(transA: false, transB: false, m: tiles, n: p.cout, k: p.cin,
                          a: v + k * tiles * p.cp, lda: p.cp, b: u + k * p.cin * p.cout, ldb: p.cout,
                          c: m + k * tiles * p.op, ldc: p.op)
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
    /// `tmp` holds 36 * 4 floats.
    @inline(__always)
    static func inputTransformRow(_ pack: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                  into v: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        let cp = p.cp, rs = p.wp * cp        // row stride of the pack
        let ks = tiles * cp                  // stride between transform points in V
        for tx in 0..<p.tilesX {
            var c = 0
            while c < cp {
                let s = pack + 4 * tx * cp + c
                // Columns: tmp[i][j] = (Bᵀ d)[i][j].
                for j in 0..<6 {
                    let sj = s + j * cp
                    let t = inputTransform6(load4(sj), load4(sj + rs), load4(sj + 2 * rs),
                                            load4(sj + 3 * rs), load4(sj + 4 * rs), load4(sj + 5 * rs))
                    store4(t.0, tmp + (0 * 6 + j) * 4); store4(t.1, tmp + (1 * 6 + j) * 4)
                    store4(t.2, tmp + (2 * 6 + j) * 4); store4(t.3, tmp + (3 * 6 + j) * 4)
                    store4(t.4, tmp + (4 * 6 + j) * 4); store4(t.5, tmp + (5 * 6 + j) * 4)
                }
                // Rows: V[i*6 + j] = (Bᵀ d B)[i][j].
                let d = v + (tileBase + tx) * cp + c
                for i in 0..<6 {
                    let r = tmp + i * 24
                    let t = inputTransform6(load4(r), load4(r + 4), load4(r + 8), load4(r + 12), load4(r + 16), load4(r + 20))
                    let di = d + i * 6 * ks
                    store4(t.0, di); store4(t.1, di + ks); store4(t.2, di + 2 * ks)
                    store4(t.3, di + 3 * ks); store4(t.4, di + 4 * ks); store4(t.5, di + 5 * ks)
                }
                c += 4
            }
        }
    }

    /// Aᵀ m A plus bias for the tiles of one tile row, from M[k][tileBase + tx][*], written into the
    /// image `out` [cout][hout][wout] at tile row `ty` (the parts inside the image). `tmp` holds
    /// 24 * 4 floats; `bias` holds op floats.
    @inline(__always)
    static func outputTransformRow(_ m: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                   bias: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, ty: Int,
                                   tmp: UnsafeMutablePointer<Float>) {
        let op = p.op, ks = tiles * op
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
                    let t = outputTransform6(load4(sj), load4(sj + 6 * ks), load4(sj + 12 * ks),
                                             load4(sj + 18 * ks), load4(sj + 24 * ks), load4(sj + 30 * ks))
                    store4(t.0, tmp + (0 * 6 + j) * 4); store4(t.1, tmp + (1 * 6 + j) * 4)
                    store4(t.2, tmp + (2 * 6 + j) * 4); store4(t.3, tmp + (3 * 6 + j) * 4)
                }
                let b = load4(bias + o)
                let lanes = Swift.min(4, p.cout - o)
                for i in 0..<rowsValid {
                    let r = tmp + i * 24
                    let y = outputTransform6(load4(r), load4(r + 4), load4(r + 8), load4(r + 12), load4(r + 16), load4(r + 20))
                    let y0 = y.0 + b, y1 = y.1 + b, y2 = y.2 + b, y3 = y.3 + b
                    let dst = out + o * plane + (4 * ty + i) * p.wout + 4 * tx
                    if colsValid == 4 {
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
                o += 4
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
        let packSize = 6 * p.wp * p.cp + 4 * p.wp * p.op + 36 * 4
        let vSize = 36 * p.maxTiles * p.cp, ySize = 36 * p.maxTiles * p.op
        withScratch(packSize * threads + vSize + ySize) { scratch in
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
                          a: v + k * tiles * p.cp, lda: p.cp, b: yhat + k * tiles * p.op, ldb: p.op,
                          beta: beta, c: du + k * p.cin * p.cout, ldc: p.cout)
                }
            }
        }
    }

    /// A dy Aᵀ for the tiles of one packed gradient tile row (gpack[4][wp][op]), to Y[k][tileBase + tx][*].
    @inline(__always)
    static func gradOutputTransformRow(_ gpack: UnsafeMutablePointer<Float>, _ p: Plan, tileBase: Int, tiles: Int,
                                       into yhat: UnsafeMutablePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        let op = p.op, rs = p.wp * op, ks = tiles * op
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
