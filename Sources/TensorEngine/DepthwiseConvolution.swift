// Depthwise 2-D convolution with one small filter shared by every channel, and its transpose:
// the FIR resampling of EDM's networks (a [1,1] or [1,3,3,1] binomial filter, stride 2), which
// PyTorch writes as conv2d / conv_transpose2d with the filter tiled over channels and groups = C.
// The two ops are each other's adjoint, so each one's input gradient is the other one. Work is
// split over whole (n, c) planes and every output is summed in a fixed order, so results do not
// depend on the thread count. The CPU backend's loops are plain on purpose (the filters have at
// most a few taps); `conv2d(groups: C)` is the independent reference the tests hold them to, and
// the reference backend's Float64 loops the other one.

extension Tensor {
    /// Cross-correlates every plane of an [N, C, H, W] input with one [kH, kW] `filter`:
    /// out[n, c, oy, ox] = sum over (ky, kx) of filter[ky, kx] * x[n, c, oy*s - p + ky, ox*s - p + kx],
    /// zeros outside, giving [N, C, (H + 2p - kH) / s + 1, (W + 2p - kW) / s + 1].
    /// Matches `torch.nn.functional.conv2d(x, f.tile([C, 1, 1, 1]), stride=s, padding=p, groups=C)`.
    /// The filter is a constant (no gradient flows to it); differentiable with respect to the input.
    public func depthwiseConv2d(filter: Tensor, stride s: Int = 1, padding p: Int = 0) -> Tensor {
        let x = self
        let geo = DepthwiseGeometry(op: "depthwiseConv2d", input: x.shape, filter: filter.shape, stride: s, padding: p)
        let (h, w) = (x.shape[2], x.shape[3])
        let ho = (h + 2 * p - geo.kh) / s + 1, wo = (w + 2 * p - geo.kw) / s + 1
        precondition(h + 2 * p >= geo.kh && w + 2 * p >= geo.kw,
                     "depthwiseConv2d: filter \(filter.shape) larger than the padded input \(x.shape) (padding \(p))")
        let out = Engine.backend.depthwiseCorrelate(x, filter: filter, stride: s, padding: p, outputSize: (ho, wo))
        return out.recordedComposed("depthwise_conv2d", [x]) { g in
            [g.depthwiseScattered(filter: filter, stride: s, padding: p, outputSize: (h, w))]
        }
    }

    /// The transpose (adjoint) of `depthwiseConv2d`: every input value spreads over the output,
    /// out[n, c, iy*s - p + ky, ix*s - p + kx] += filter[ky, kx] * x[n, c, iy, ix], giving
    /// [N, C, (H - 1) s - 2p + kH + outputPadding, (W - 1) s - 2p + kW + outputPadding].
    /// Matches `torch.nn.functional.conv_transpose2d(x, f.tile([C, 1, 1, 1]), stride=s, padding=p,
    /// output_padding=outputPadding, groups=C)`. The filter is a constant; differentiable with
    /// respect to the input.
    public func depthwiseConvTranspose2d(filter: Tensor, stride s: Int = 1, padding p: Int = 0,
                                         outputPadding op: Int = 0) -> Tensor {
        let x = self
        let geo = DepthwiseGeometry(op: "depthwiseConvTranspose2d", input: x.shape, filter: filter.shape, stride: s, padding: p)
        precondition(op >= 0 && op < s, "depthwiseConvTranspose2d: output padding \(op) must be in 0..<stride (\(s))")
        let (h, w) = (x.shape[2], x.shape[3])
        let ho = (h - 1) * s - 2 * p + geo.kh + op, wo = (w - 1) * s - 2 * p + geo.kw + op
        precondition(ho > 0 && wo > 0, "depthwiseConvTranspose2d: padding \(p) leaves no output for input \(x.shape) and filter \(filter.shape)")
        let out = Engine.backend.depthwiseScatter(x, filter: filter, stride: s, padding: p, outputSize: (ho, wo))
        return out.recordedComposed("depthwise_conv_transpose2d", [x]) { g in
            [g.depthwiseCorrelated(filter: filter, stride: s, padding: p, outputSize: (h, w))]
        }
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func depthwiseCorrelate(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        let (ho, wo) = outputSize
        let out = Tensor.uninitialized([x.shape[0], x.shape[1], ho, wo])
        // The filter's values as an array (they are few), so the loops never touch the tensor.
        DepthwiseKernels.correlate(x.pointer, out.pointer, planes: x.shape[0] * x.shape[1], h: x.shape[2], w: x.shape[3],
                                   ho: ho, wo: wo, filter.scalars, kh: filter.shape[0], kw: filter.shape[1],
                                   stride: stride, padding: padding)
        return out
    }

    public func depthwiseScatter(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        let (ho, wo) = outputSize
        let out = Tensor.uninitialized([x.shape[0], x.shape[1], ho, wo])
        DepthwiseKernels.scatter(x.pointer, out.pointer, planes: x.shape[0] * x.shape[1], h: x.shape[2], w: x.shape[3],
                                 ho: ho, wo: wo, filter.scalars, kh: filter.shape[0], kw: filter.shape[1],
                                 stride: stride, padding: padding)
        return out
    }
}

/// Shape checks shared by the two ops.
struct DepthwiseGeometry {
    let planes: Int, kh: Int, kw: Int

    init(op: String, input: [Int], filter: [Int], stride: Int, padding: Int) {
        precondition(input.count == 4, "\(op): input must be [N, C, H, W], got \(input)")
        precondition(filter.count == 2 && filter[0] >= 1 && filter[1] >= 1, "\(op): filter must be [kH, kW], got \(filter)")
        precondition(stride >= 1 && padding >= 0, "\(op): stride \(stride) must be >= 1 and padding \(padding) >= 0")
        planes = input[0] * input[1]
        kh = filter[0]; kw = filter[1]
    }
}

enum DepthwiseKernels {
    /// Planes per parallel chunk: about 32K output values each.
    @inline(__always)
    static func grain(_ values: Int) -> Int { Swift.max(1, 32768 / Swift.max(1, values)) }

    /// Output columns [lo, hi) whose source column ox*s - p + kx lies in 0..<w.
    @inline(__always)
    static func validColumns(_ kx: Int, w: Int, wo: Int, stride s: Int, padding p: Int) -> (Int, Int) {
        let a = p - kx                             // need ox*s >= a
        let lo = a <= 0 ? 0 : Swift.min(wo, (a + s - 1) / s)
        let b = w - 1 + p - kx                     // need ox*s <= b
        let hi = b < 0 ? 0 : Swift.min(wo, b / s + 1)
        return (lo, Swift.max(lo, hi))
    }

    /// dst[plane] ([ho, wo]) = correlation of src[plane] ([h, w]) with f, stride s, padding p.
    static func correlate(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int,
                          h: Int, w: Int, ho: Int, wo: Int, _ f: [Float], kh: Int, kw: Int, stride s: Int, padding p: Int) {
        f.withUnsafeBufferPointer { fb in
            let fp = fb.baseAddress!
            parallelFor(planes, grain: grain(ho * wo)) { range in
                for plane in range {
                    let sp = src + plane * h * w, dp = dst + plane * ho * wo
                    for oy in 0..<ho {
                        let drow = dp + oy * wo
                        for i in 0..<wo { drow[i] = 0 }
                        for ky in 0..<kh {
                            let iy = oy * s - p + ky
                            if iy < 0 || iy >= h { continue }
                            let srow = sp + iy * w
                            for kx in 0..<kw {
                                let c = fp[ky * kw + kx]
                                let (lo, hi) = validColumns(kx, w: w, wo: wo, stride: s, padding: p)
                                if lo >= hi { continue }
                                let base = srow + (lo * s - p + kx)
                                let d = drow + lo
                                if s == 1 {
                                    for i in 0..<(hi - lo) { d[i] += c * base[i] }
                                } else {
                                    for i in 0..<(hi - lo) { d[i] += c * base[i &* s] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dst[plane] ([ho, wo]) = the transpose of `correlate` applied to src[plane] ([h, w]):
    /// dst[iy*s - p + ky][ix*s - p + kx] += f[ky, kx] * src[iy][ix] where inside.
    static func scatter(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int,
                        h: Int, w: Int, ho: Int, wo: Int, _ f: [Float], kh: Int, kw: Int, stride s: Int, padding p: Int) {
        f.withUnsafeBufferPointer { fb in
            let fp = fb.baseAddress!
            parallelFor(planes, grain: grain(ho * wo)) { range in
                for plane in range {
                    let sp = src + plane * h * w, dp = dst + plane * ho * wo
                    dp.update(repeating: 0, count: ho * wo)
                    for iy in 0..<h {
                        let srow = sp + iy * w
                        for ky in 0..<kh {
                            let oy = iy * s - p + ky
                            if oy < 0 || oy >= ho { continue }
                            let drow = dp + oy * wo
                            for kx in 0..<kw {
                                let c = fp[ky * kw + kx]
                                // Source columns ix with 0 <= ix*s - p + kx < wo: the same bound
                                // as `validColumns` with the roles of input and output swapped.
                                let (lo, hi) = validColumns(kx, w: wo, wo: w, stride: s, padding: p)
                                if lo >= hi { continue }
                                let d = drow + (lo * s - p + kx)
                                let sr = srow + lo
                                if s == 1 {
                                    for i in 0..<(hi - lo) { d[i] += c * sr[i] }
                                } else {
                                    for i in 0..<(hi - lo) { d[i &* s] += c * sr[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
