// 2-D convolution, forward and backward, on three paths chosen per geometry:
//   - Winograd F(4x4,3x3) (ConvolutionWinograd.swift) for 3x3 kernels, stride 1, one group;
//   - a plain GEMM per image for 1x1 kernels with stride 1 and no padding (no im2col);
//   - im2col + GEMM for everything else: several images share one column matrix so the products
//     stay large, in chunks of bounded size (`Im2col.columnBudget` floats per chunk).
// Every path splits its work in a way fixed by the geometry (never by the thread count) and sums
// in a fixed order, so results are identical for any `Engine.threads`. The plain loops in
// ConvolutionReference.swift are the yardstick the tests hold each path to. Scratch memory comes
// from `ScratchPool` (KernelSupport.swift), which keeps up to 64 MB between calls.

/// Which kernel `conv2d` uses. `.automatic` picks by geometry; the others exist for tests and
/// benchmarks. `.winograd` falls back to `.automatic` where Winograd cannot apply (a kernel other
/// than 3x3, stride > 1 or groups > 1); `.im2col` forces the general path, even for 1x1 kernels.
public enum Conv2dAlgorithm: Sendable {
    case automatic, winograd, im2col
}

extension Tensor {
    /// 2-D convolution (cross-correlation) of an [N, C, H, W] input with an [O, C/groups, kH, kW]
    /// weight and optional [O] bias, giving [N, O, Ho, Wo] with Ho = (H + 2 padding - kH) / stride + 1.
    /// Matches `torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation=1, groups)`
    /// with zero padding. Not supported: dilation, padding modes other than zeros, "same"/"valid"
    /// strings, different padding on the two sides of an axis, and second derivatives through the
    /// fast kernels (a create-graph backward records the input and weight gradients as ops of
    /// their own, each differentiable again).
    /// Differentiable with respect to input, weight and bias.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                       groups: Int = 1, algorithm: Conv2dAlgorithm = .automatic) -> Tensor {
        conv2d(weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding),
               groups: groups, algorithm: algorithm)
    }

    /// `conv2d` with separate (height, width) stride and padding; pass both as pairs.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int),
                       groups: Int = 1, algorithm: Conv2dAlgorithm = .automatic) -> Tensor {
        let x = self
        let g = Conv2dGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding, groups: groups)
        if let bias {
            precondition(bias.shape == [g.o], "conv2d: bias \(bias.shape) should be [\(g.o)] for weight \(weight.shape)")
        }
        let backend = Engine.backend
        let out = backend.conv2d(x, weight: weight, bias: bias, geometry: g, algorithm: algorithm)
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        return out.recorded("conv2d", inputs, backward: { gradOut in
            precondition(gradOut.shape == g.outputShape, "conv2d backward: gradient \(gradOut.shape) for output \(g.outputShape)")
            let (gx, gw) = backend.conv2dBackward(gradient: gradOut, input: x, weight: weight, geometry: g, algorithm: algorithm,
                                                  needInput: x.requiresGrad, needWeight: weight.requiresGrad)
            var grads: [Tensor?] = [gx, gw]
            if let bias { grads.append(bias.requiresGrad ? backend.conv2dBiasGradient(gradOut) : nil) }
            return grads
        }, differentiableBackward: { gradOut in
            // Both gradients are linear in the output gradient and in the other operand.
            var grads: [Tensor?] = [
                x.requiresGrad ? gradOut.conv2dInputGradient(weight: weight, input: x, geometry: g, algorithm: algorithm) : nil,
                weight.requiresGrad ? gradOut.conv2dWeightGradient(input: x, weight: weight, geometry: g, algorithm: algorithm) : nil]
            if let bias { grads.append(bias.requiresGrad ? gradOut.sum(axes: [0, 2, 3]) : nil) }
            return grads
        })
    }
}

// MARK: - CPU backend

extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: Conv2dGeometry,
                       algorithm: Conv2dAlgorithm) -> Tensor {
        ConvolutionKernels.forward(x, weight, bias, g, ConvolutionKernels.path(g, algorithm))
    }

    public func conv2dBackward(gradient: Tensor, input: Tensor, weight: Tensor, geometry g: Conv2dGeometry,
                               algorithm: Conv2dAlgorithm, needInput: Bool, needWeight: Bool) -> (input: Tensor?, weight: Tensor?) {
        ConvolutionKernels.backward(gradient, input, weight, g, ConvolutionKernels.path(g, algorithm),
                                    needInput: needInput, needWeight: needWeight)
    }

    public func conv2dBiasGradient(_ gradient: Tensor) -> Tensor { ConvolutionKernels.biasGradient(gradient) }
}

// MARK: - Dispatch

enum ConvolutionKernels {
    enum Path { case winograd, pointwise, im2col }

    static func path(_ g: Conv2dGeometry, _ algorithm: Conv2dAlgorithm) -> Path {
        let winogradPossible = g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.groups == 1
        switch algorithm {
        case .im2col: return .im2col
        case .winograd where winogradPossible: return .winograd
        default:
            // In bfloat16 too: its transformed operands round to bf16 like any GEMM operand
            // (measured on the shipped model: 4.6e-3 relative to float32 with Winograd, 2.3e-3
            // through im2col, at 1.5x the speed).
            if Winograd.applies(g) { return .winograd }
            if g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.groups == 1
                && g.ho * g.wo >= Pointwise.minPixels { return .pointwise }
            return .im2col
        }
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: Conv2dGeometry, _ path: Path) -> Tensor {
        let out = Tensor.uninitialized(g.outputShape)
        if out.count == 0 { return out }
        if g.cg == 0 {  // no input channels: the bias alone
            let plane = g.ho * g.wo
            for n in 0..<g.n { for o in 0..<g.o {
                (out.pointer + (n * g.o + o) * plane).update(repeating: bias?.pointer[o] ?? 0, count: plane)
            } }
            return out
        }
        switch path {
        case .winograd:
            let plan = Winograd.Plan(n: g.n, cin: g.c, hin: g.h, win: g.w, cout: g.o, hout: g.ho, wout: g.wo,
                                     py: g.ph, px: g.pw, minChunks: 0)
            withScratch(Winograd.weightScratchCount(cin: g.c, cout: g.o)) { u in
                Winograd.transformWeights(w.pointer, cin: g.c, cout: g.o, flipped: false, into: u,
                                          scratch: u + 36 * Winograd.weightStride(cin: g.c, cout: g.o))
                Winograd.convolve(x.pointer, plan, u: u, bias: bias?.pointer, out: out.pointer)
            }
        case .pointwise:
            Pointwise.forward(x.pointer, w.pointer, bias?.pointer, g, out.pointer)
        case .im2col:
            Im2col.forward(x.pointer, w.pointer, bias?.pointer, g, out.pointer)
        }
        return out
    }

    /// Gradients with respect to input and weight (each only when asked for).
    static func backward(_ gradOut: Tensor, _ x: Tensor, _ w: Tensor, _ g: Conv2dGeometry, _ path: Path,
                         needInput: Bool, needWeight: Bool) -> (Tensor?, Tensor?) {
        if !needInput && !needWeight { return (nil, nil) }
        let gx = needInput ? Tensor.uninitialized(g.inputShape) : nil
        let gw = needWeight ? Tensor.uninitialized(g.weightShape) : nil
        if gradOut.count == 0 || g.cg == 0 {
            gx?.pointer.update(repeating: 0, count: gx!.count)
            gw?.pointer.update(repeating: 0, count: gw!.count)
            return (gx, gw)
        }
        switch path {
        case .winograd:
            if let gx {
                // dX = conv(dY, W rotated 180 degrees with in/out channels swapped), padding 2 - p.
                let plan = Winograd.Plan(n: g.n, cin: g.o, hin: g.ho, win: g.wo, cout: g.c, hout: g.h, wout: g.w,
                                         py: 2 - g.ph, px: 2 - g.pw)
                withScratch(Winograd.weightScratchCount(cin: g.o, cout: g.c)) { u in
                    Winograd.transformWeights(w.pointer, cin: g.o, cout: g.c, flipped: true, into: u,
                                              scratch: u + 36 * Winograd.weightStride(cin: g.o, cout: g.c))
                    Winograd.convolve(gradOut.pointer, plan, u: u, bias: nil, out: gx.pointer)
                }
            }
            if let gw {
                // Its chunks run in order, each in two parallel steps: 8x larger chunks amortise the
                // steps and lengthen the products' inner (tile) dimension.
                let plan = Winograd.Plan(n: g.n, cin: g.c, hin: g.h, win: g.w, cout: g.o, hout: g.ho, wout: g.wo,
                                         py: g.ph, px: g.pw, targetTiles: Winograd.targetTiles(cin: g.c, cout: g.o, scale: 8), minChunks: 1)
                withScratch(Winograd.weightScratchCount(cin: g.c, cout: g.o)) { du in
                    Winograd.weightGradientTransform(x.pointer, gradOut.pointer, plan, into: du)
                    Winograd.weightGradientFromTransform(du, cin: g.c, cout: g.o, into: gw.pointer,
                                                         scratch: du + 36 * Winograd.weightStride(cin: g.c, cout: g.o))
                }
            }
        case .pointwise:
            Pointwise.backward(gradOut.pointer, x.pointer, w.pointer, g, gx?.pointer, gw?.pointer)
        case .im2col:
            Im2col.backward(gradOut.pointer, x.pointer, w.pointer, g, gx?.pointer, gw?.pointer)
        }
        return (gx, gw)
    }

    /// The bias gradient: gradOut [N, O, H, W] summed over N, H, W in a fixed order.
    static func biasGradient(_ gradOut: Tensor) -> Tensor {
        let s = gradOut.shape
        let n = s[0], o = s[1], plane = s[2] * s[3]
        let out = Tensor.uninitialized([o])
        let src = gradOut.pointer, dst = out.pointer
        parallelFor(o, grain: Swift.max(1, 65536 / Swift.max(1, n * plane))) { range in
            for c in range {
                var acc = 0.0
                for b in 0..<n { acc += fixedOrderSum(src + (b * o + c) * plane, plane) }
                dst[c] = Float(acc)
            }
        }
        return out
    }
}

// MARK: - 1x1 kernels

/// 1x1 kernels, stride 1, no padding, one group: per image, out[n] = W [O, C] x in[n] [C, H*W].
enum Pointwise {
    /// Below this many pixels per image, the batched im2col path (which makes one large product
    /// over several images) is faster than one product per image.
    static let minPixels = 256

    static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        _ g: Conv2dGeometry, _ out: UnsafeMutablePointer<Float>) {
        let l = g.ho * g.wo
        runOnWorkers(g.n, workers: Swift.min(Engine.threads, g.n)) { n, _ in
            let dst = out + n * g.o * l
            if let bias { for o in 0..<g.o { (dst + o * l).update(repeating: bias[o], count: l) } }
            sgemm(transA: false, transB: false, m: g.o, n: l, k: g.c, a: w, lda: g.c, b: x + n * g.c * l, ldb: l,
                  beta: bias == nil ? 0 : 1, c: dst, ldc: l)
        }
    }

    static func backward(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                         _ g: Conv2dGeometry, _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?) {
        let l = g.ho * g.wo
        if let gx {
            // dX[n] = Wᵀ [C, O] x dY[n] [O, HW].
            runOnWorkers(g.n, workers: Swift.min(Engine.threads, g.n)) { n, _ in
                sgemm(transA: true, transB: false, m: g.c, n: l, k: g.o, a: w, lda: g.c, b: gy + n * g.o * l, ldb: l,
                      c: gx + n * g.c * l, ldc: l)
            }
        }
        if let gw {
            // dW = sum over n, in order, of dY[n] [O, HW] x X[n]ᵀ [HW, C], in fixed blocks of
            // (output rows, input columns), each block on one worker.
            let bo = 64, bc = 64
            let oBlocks = (g.o + bo - 1) / bo, cBlocks = (g.c + bc - 1) / bc
            runOnWorkers(oBlocks * cBlocks, workers: Swift.min(Engine.threads, oBlocks * cBlocks)) { item, _ in
                let o0 = (item / cBlocks) * bo, c0 = (item % cBlocks) * bc
                let mo = Swift.min(bo, g.o - o0), nc = Swift.min(bc, g.c - c0)
                for n in 0..<g.n {
                    sgemm(transA: false, transB: true, m: mo, n: nc, k: l, a: gy + (n * g.o + o0) * l, lda: l,
                          b: x + (n * g.c + c0) * l, ldb: l, beta: n == 0 ? 0 : 1, c: gw + o0 * g.c + c0, ldc: g.c)
                }
            }
        }
    }
}

// MARK: - im2col

/// The general path: im2col + GEMM. Columns: row (c, ky, kx) of the group's channels, column
/// (image, oy, ox) for the images of a chunk, so one product covers several images.
enum Im2col {
    /// Floats of one chunk's column matrix (4 MB), unless a single output row needs more. OpenBLAS
    /// ran these products at ~85 GFLOP/s with 1-4 MB operands, ~50 GFLOP/s with 14 MB.
    static let columnBudget = 1 << 20
    /// From this many output pixels per image, products go straight into the output per image
    /// (no copy); below, one product per chunk goes to a buffer and is copied out.
    static let directPixels = 1024

    /// How images (or, for big images, blocks of output rows of one image) are grouped.
    struct Chunking {
        let imagesPerChunk: Int      // > 1 only when blocksPerImage == 1
        let blocksPerImage: Int
        let rowsPerBlock: Int
        let chunks: Int

        init(_ g: Conv2dGeometry, minChunks: Int) {
            let k = g.cg * g.kh * g.kw, l = g.ho * g.wo
            if k * l <= Im2col.columnBudget {
                var ipc = Swift.max(1, Im2col.columnBudget / Swift.max(1, k * l))
                if minChunks > 0 { ipc = Swift.min(ipc, Swift.max(1, (g.n + minChunks - 1) / minChunks)) }
                imagesPerChunk = ipc; blocksPerImage = 1; rowsPerBlock = g.ho
                chunks = (g.n + ipc - 1) / ipc
            } else {
                imagesPerChunk = 1
                rowsPerBlock = Swift.max(1, Im2col.columnBudget / Swift.max(1, k * g.wo))
                blocksPerImage = (g.ho + rowsPerBlock - 1) / rowsPerBlock
                chunks = g.n * blocksPerImage
            }
        }

        /// Images [n0, n1) and output rows [r0, r1) of chunk `c`.
        func ranges(_ c: Int, _ g: Conv2dGeometry) -> (Int, Int, Int, Int) {
            if blocksPerImage == 1 {
                let n0 = c * imagesPerChunk
                return (n0, Swift.min(g.n, n0 + imagesPerChunk), 0, g.ho)
            }
            let n = c / blocksPerImage, r0 = (c % blocksPerImage) * rowsPerBlock
            return (n, n + 1, r0, Swift.min(g.ho, r0 + rowsPerBlock))
        }

        var maxColumns: Int { imagesPerChunk * rowsPerBlock }  // times wo
    }

    /// Writes the rows of channel `ci` (within its group) of the column matrix for one image and
    /// output rows [r0, r1): col[(ci*kh + ky)*kw + kx][(oy - r0)*wo + ox] = x[c][oy*sh-ph+ky][ox*sw-pw+kx].
    @inline(__always)
    static func fill(_ plane: UnsafePointer<Float>, ci: Int, _ g: Conv2dGeometry, r0: Int, r1: Int,
                     col: UnsafeMutablePointer<Float>, ldc: Int) {
        let wo = g.wo, sw = g.sw
        for ky in 0..<g.kh {
            for kx in 0..<g.kw {
                let row = col + ((ci * g.kh + ky) * g.kw + kx) * ldc
                let (lo, hi) = validRange(kx, g)
                for oy in r0..<r1 {
                    let d = row + (oy - r0) * wo
                    let iy = oy * g.sh - g.ph + ky
                    if iy < 0 || iy >= g.h {
                        for i in 0..<wo { d[i] = 0 }
                        continue
                    }
                    for i in 0..<lo { d[i] = 0 }
                    let s = plane + iy * g.w + (lo * sw - g.pw + kx), dl = d + lo
                    if sw == 1 {
                        for i in 0..<(hi - lo) { dl[i] = s[i] }
                    } else {
                        for i in 0..<(hi - lo) { dl[i] = s[i &* sw] }
                    }
                    for i in hi..<wo { d[i] = 0 }
                }
            }
        }
    }

    /// The inverse of `fill`: adds the column rows of channel `ci` into the gradient plane.
    @inline(__always)
    static func accumulate(_ plane: UnsafeMutablePointer<Float>, ci: Int, _ g: Conv2dGeometry, r0: Int, r1: Int,
                           col: UnsafePointer<Float>, ldc: Int) {
        let wo = g.wo, sw = g.sw
        for ky in 0..<g.kh {
            for kx in 0..<g.kw {
                let row = col + ((ci * g.kh + ky) * g.kw + kx) * ldc
                let (lo, hi) = validRange(kx, g)
                for oy in r0..<r1 {
                    let iy = oy * g.sh - g.ph + ky
                    if iy < 0 || iy >= g.h { continue }
                    let s = row + (oy - r0) * wo + lo
                    let d = plane + iy * g.w + (lo * sw - g.pw + kx)
                    if sw == 1 {
                        for i in 0..<(hi - lo) { d[i] += s[i] }
                    } else {
                        for i in 0..<(hi - lo) { d[i &* sw] += s[i] }
                    }
                }
            }
        }
    }

    /// Output columns [lo, hi) whose input column ox*sw - pw + kx lies inside the image.
    @inline(__always)
    static func validRange(_ kx: Int, _ g: Conv2dGeometry) -> (Int, Int) {
        let a = g.pw - kx                         // need ox*sw >= a
        let lo = a <= 0 ? 0 : Swift.min(g.wo, (a + g.sw - 1) / g.sw)
        let b = g.w - 1 + g.pw - kx               // need ox*sw <= b
        let hi = b < 0 ? 0 : Swift.min(g.wo, b / g.sw + 1)
        return (lo, Swift.max(lo, hi))
    }

    static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        _ g: Conv2dGeometry, _ out: UnsafeMutablePointer<Float>) {
        // Chunks of a size fixed by the geometry (`minChunks` 0), and every product of the
        // batched (not direct) path as wide as a full chunk: a chunk short of images computes
        // stale columns that are never read. So the products have one shape whatever the batch
        // (BLAS's small-matrix kernels round differently) and an image's output does not depend
        // on the batch it is in; at a small batch that can leave a single chunk.
        let ch = Chunking(g, minChunks: 0)
        let k = g.cg * g.kh * g.kw, l = g.ho * g.wo, plane = g.h * g.w
        let colSize = k * ch.maxColumns * g.wo
        let direct = ch.blocksPerImage > 1 || l >= directPixels
        let tmpSize = direct ? 0 : g.og * ch.maxColumns * g.wo
        let workers = Swift.min(Engine.threads, ch.chunks)
        withScratch((colSize + tmpSize) * workers) { scratch in
            runOnWorkers(ch.chunks, workers: workers) { c, worker in
                let col = scratch + worker * (colSize + tmpSize), tmp = col + colSize
                let (n0, n1, r0, r1) = ch.ranges(c, g)
                let cols = (r1 - r0) * g.wo, ldc = ch.imagesPerChunk * cols
                for grp in 0..<g.groups {
                    for n in n0..<n1 {
                        let src = x + (n * g.c + grp * g.cg) * plane
                        for ci in 0..<g.cg {
                            fill(src + ci * plane, ci: ci, g, r0: r0, r1: r1, col: col + (n - n0) * cols, ldc: ldc)
                        }
                    }
                    let wg = w + grp * g.og * k
                    if direct {
                        for n in n0..<n1 {
                            let dst = out + (n * g.o + grp * g.og) * l + r0 * g.wo
                            if let bias {
                                for o in 0..<g.og { (dst + o * l).update(repeating: bias[grp * g.og + o], count: cols) }
                            }
                            sgemm(transA: false, transB: false, m: g.og, n: cols, k: k, a: wg, lda: k,
                                  b: col + (n - n0) * cols, ldb: ldc, beta: bias == nil ? 0 : 1, c: dst, ldc: l)
                        }
                    } else {
                        sgemm(transA: false, transB: false, m: g.og, n: ldc, k: k, a: wg, lda: k,
                              b: col, ldb: ldc, c: tmp, ldc: ldc)
                        for n in n0..<n1 {
                            for o in 0..<g.og {
                                let s = tmp + o * ldc + (n - n0) * l
                                let d = out + (n * g.o + grp * g.og + o) * l
                                let b = bias?[grp * g.og + o] ?? 0
                                for i in 0..<l { d[i] = s[i] + b }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Input and weight gradients. Chunks of images run in order (the weight gradient accumulates
    /// over them), each in three parallel steps over partitions fixed by the geometry:
    ///   1. per (image, channel): gather the output gradient as [og, columns], fill x's columns;
    ///   2. per (output-row block, channel block): dW_g[block] (+)= dY colsᵀ;
    ///   3. per (channel block, image group): cols = W_gᵀ dY for those columns, then col2im into dX.
    static func backward(_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                         _ g: Conv2dGeometry, _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?) {
        let ch = Chunking(g, minChunks: 1)
        let kk = g.kh * g.kw, k = g.cg * kk, l = g.ho * g.wo, plane = g.h * g.w
        let colSize = k * ch.maxColumns * g.wo, gySize = g.og * ch.maxColumns * g.wo
        let threads = Engine.threads
        // Channel blocks of about 64 column rows; output-row blocks of 32.
        let blockChannels = Swift.max(1, (64 + kk - 1) / kk)
        let cBlocks = (g.cg + blockChannels - 1) / blockChannels
        let blockRows = 32, oBlocks = (g.og + blockRows - 1) / blockRows
        if let gx { gx.update(repeating: 0, count: g.n * g.c * plane) }
        withScratch(colSize + gySize) { col in
            let gp = col + colSize
            for c in 0..<ch.chunks {
                let (n0, n1, r0, r1) = ch.ranges(c, g)
                let images = n1 - n0
                let cols = (r1 - r0) * g.wo, ldc = images * cols
                // Image groups of at least 256 columns for step 3.
                let groupImages = Swift.max(1, 256 / Swift.max(1, cols))
                let imageGroups = (images + groupImages - 1) / groupImages
                for grp in 0..<g.groups {
                    let items = images * g.cg
                    runOnWorkers(items, workers: Swift.min(threads, items)) { item, _ in
                        let n = n0 + item / g.cg, ci = item % g.cg
                        var o = ci
                        while o < g.og {
                            let s = gy + (n * g.o + grp * g.og + o) * l + r0 * g.wo
                            let d = gp + o * ldc + (n - n0) * cols
                            for i in 0..<cols { d[i] = s[i] }
                            o += g.cg
                        }
                        if gw != nil {
                            fill(x + (n * g.c + grp * g.cg + ci) * plane, ci: ci, g, r0: r0, r1: r1,
                                 col: col + (n - n0) * cols, ldc: ldc)
                        }
                    }
                    if let gw {
                        runOnWorkers(oBlocks * cBlocks, workers: Swift.min(threads, oBlocks * cBlocks)) { item, _ in
                            let o0 = (item / cBlocks) * blockRows, c0 = (item % cBlocks) * blockChannels
                            let mo = Swift.min(blockRows, g.og - o0), nk = (Swift.min(g.cg, c0 + blockChannels) - c0) * kk
                            sgemm(transA: false, transB: true, m: mo, n: nk, k: ldc, a: gp + o0 * ldc, lda: ldc,
                                  b: col + c0 * kk * ldc, ldb: ldc, beta: c == 0 ? 0 : 1,
                                  c: gw + (grp * g.og + o0) * k + c0 * kk, ldc: k)
                        }
                    }
                    if let gx {
                        runOnWorkers(cBlocks * imageGroups, workers: Swift.min(threads, cBlocks * imageGroups)) { item, _ in
                            let c0 = (item / imageGroups) * blockChannels, c1 = Swift.min(g.cg, c0 + blockChannels)
                            let i0 = (item % imageGroups) * groupImages, i1 = Swift.min(images, i0 + groupImages)
                            let rows = col + c0 * kk * ldc + i0 * cols
                            sgemm(transA: true, transB: false, m: (c1 - c0) * kk, n: (i1 - i0) * cols, k: g.og,
                                  a: w + grp * g.og * k + c0 * kk, lda: k, b: gp + i0 * cols, ldb: ldc, c: rows, ldc: ldc)
                            for i in i0..<i1 {
                                let dst = gx + ((n0 + i) * g.c + grp * g.cg) * plane
                                for ci in c0..<c1 {
                                    accumulate(dst + ci * plane, ci: ci, g, r0: r0, r1: r1, col: col + i * cols, ldc: ldc)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
