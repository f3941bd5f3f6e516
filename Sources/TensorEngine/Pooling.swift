// Average pooling and nearest-neighbour upsampling over NCHW tensors, each with its gradient.
// Work is split over whole (n, c) planes and every value is summed in a fixed order, so results do
// not depend on the thread count. ConvolutionReference.swift holds the plain versions tests use.

extension Tensor {
    /// Average pooling over kH x kW windows taken every (sH, sW), for [N, C, H, W] input, giving
    /// [N, C, (H - kH) / sH + 1, (W - kW) / sW + 1]. `stride` defaults to `kernel`.
    /// Matches `torch.nn.functional.avg_pool2d(x, kernel, stride)` with padding 0 and
    /// ceil_mode=False (then count_include_pad and divisor_override make no difference).
    /// Not supported: padding, ceil_mode. Differentiable.
    public func avgPool2d(kernel: Int, stride: Int? = nil) -> Tensor {
        let s = stride ?? kernel
        return avgPool2d(kernel: (kernel, kernel), stride: (s, s))
    }

    /// `avgPool2d` with separate (height, width) kernel and stride; `stride` defaults to `kernel`.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil) -> Tensor {
        let x = self
        let (kh, kw) = kernel
        let (sh, sw) = stride ?? kernel
        precondition(x.rank == 4, "avgPool2d: input must be [N, C, H, W], got \(x.shape)")
        precondition(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1, "avgPool2d: kernel \(kernel) and stride \((sh, sw)) must be >= 1")
        let (h, w) = (x.shape[2], x.shape[3])
        precondition(h >= kh && w >= kw, "avgPool2d: kernel \(kernel) larger than input \(h)x\(w)")
        let inShape = x.shape
        let out = Engine.backend.avgPool2d(x, kernel: (kh, kw), stride: (sh, sw))
        return out.recordedComposed("avg_pool2d", [x]) { g in
            [g.avgPool2dGradient(inputShape: inShape, kernel: (kh, kw), stride: (sh, sw))]
        }
    }

    /// Nearest-neighbour upsampling by 2 in height and width: [N, C, H, W] -> [N, C, 2H, 2W].
    /// Matches `torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")`. Differentiable.
    public func upsampleNearest2x() -> Tensor { upsampleNearest(scale: (2, 2)) }

    /// Nearest-neighbour upsampling by an integer factor in height and width.
    public func upsampleNearest(scale: Int) -> Tensor { upsampleNearest(scale: (scale, scale)) }

    /// Nearest-neighbour upsampling by integer factors (sH, sW): out[n, c, y, x] = in[n, c, y / sH, x / sW].
    /// Matches `torch.nn.functional.interpolate(x, scale_factor=(sH, sW), mode="nearest")` for integer
    /// factors. Not supported: fractional factors, target sizes, other modes. Differentiable (the
    /// gradient sums each sH x sW block).
    public func upsampleNearest(scale: (Int, Int)) -> Tensor {
        let x = self
        let (sh, sw) = scale
        precondition(x.rank == 4, "upsampleNearest: input must be [N, C, H, W], got \(x.shape)")
        precondition(sh >= 1 && sw >= 1, "upsampleNearest: scale \(scale) must be >= 1")
        let out = Engine.backend.upsampleNearest(x, scale: (sh, sw))
        return out.recordedComposed("upsample_nearest", [x]) { g in
            [g.upsampleNearestGradient(scale: (sh, sw))]
        }
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        let (kh, kw) = kernel, (sh, sw) = stride
        let (h, w) = (x.shape[2], x.shape[3])
        let ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1
        let planes = x.shape[0] * x.shape[1]
        let out = Tensor.uninitialized([x.shape[0], x.shape[1], ho, wo])
        let src = x.pointer, dst = out.pointer
        let scale = 1 / Float(kh * kw)
        parallelFor(planes, grain: Swift.max(1, 32768 / Swift.max(1, h * w))) { range in
            for p in range {
                let s = src + p * h * w, d = dst + p * ho * wo
                for oy in 0..<ho {
                    let drow = d + oy * wo
                    for i in 0..<wo { drow[i] = 0 }
                    for ky in 0..<kh {
                        let srow = s + (oy * sh + ky) * w
                        for kx in 0..<kw {
                            let sk = srow + kx
                            if sw == 1 {
                                for i in 0..<wo { drow[i] += sk[i] }
                            } else {
                                for i in 0..<wo { drow[i] += sk[i &* sw] }
                            }
                        }
                    }
                    for i in 0..<wo { drow[i] *= scale }
                }
            }
        }
        return out
    }

    public func avgPool2dBackward(gradient g: Tensor, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        let (kh, kw) = kernel, (sh, sw) = stride
        let (h, w) = (inputShape[2], inputShape[3])
        let ho = g.shape[2], wo = g.shape[3]
        let planes = inputShape[0] * inputShape[1]
        let scale = 1 / Float(kh * kw)
        let gx = Tensor.zeros(inputShape)
        let gs = g.pointer, gd = gx.pointer
        parallelFor(planes, grain: Swift.max(1, 32768 / Swift.max(1, h * w))) { range in
            for p in range {
                let s = gs + p * ho * wo, d = gd + p * h * w
                for oy in 0..<ho {
                    let grow = s + oy * wo
                    for ky in 0..<kh {
                        let drow = d + (oy * sh + ky) * w
                        for kx in 0..<kw {
                            let dk = drow + kx
                            if sw == 1 {
                                for i in 0..<wo { dk[i] += grow[i] * scale }
                            } else {
                                for i in 0..<wo { dk[i &* sw] += grow[i] * scale }
                            }
                        }
                    }
                }
            }
        }
        return gx
    }

    public func upsampleNearest(_ x: Tensor, scale: (Int, Int)) -> Tensor {
        let (sh, sw) = scale
        let (h, w) = (x.shape[2], x.shape[3])
        let ho = h * sh, wo = w * sw
        let planes = x.shape[0] * x.shape[1]
        let out = Tensor.uninitialized([x.shape[0], x.shape[1], ho, wo])
        let src = x.pointer, dst = out.pointer
        let grain = Swift.max(1, 32768 / Swift.max(1, ho * wo))
        parallelFor(planes, grain: grain) { range in
            for p in range {
                let s = src + p * h * w, d = dst + p * ho * wo
                for iy in 0..<h {
                    let srow = s + iy * w, drow = d + iy * sh * wo
                    if sw == 2 {
                        for i in 0..<w { let v = srow[i]; drow[2 &* i] = v; drow[2 &* i &+ 1] = v }
                    } else {
                        for i in 0..<w { let v = srow[i]; let d = drow + i &* sw; for j in 0..<sw { d[j] = v } }
                    }
                    for r in 1..<Swift.max(1, sh) {
                        let copy = drow + r * wo
                        for i in 0..<wo { copy[i] = drow[i] }
                    }
                }
            }
        }
        return out
    }

    public func upsampleNearestBackward(gradient g: Tensor, scale: (Int, Int)) -> Tensor {
        let (sh, sw) = scale
        let ho = g.shape[2], wo = g.shape[3]
        let h = ho / sh, w = wo / sw
        let planes = g.shape[0] * g.shape[1]
        let grain = Swift.max(1, 32768 / Swift.max(1, ho * wo))
        let gx = Tensor.uninitialized([g.shape[0], g.shape[1], h, w])
        let gs = g.pointer, gd = gx.pointer
        parallelFor(planes, grain: grain) { range in
            for p in range {
                let s = gs + p * ho * wo, d = gd + p * h * w
                for iy in 0..<h {
                    let drow = d + iy * w
                    for i in 0..<w { drow[i] = 0 }
                    for a in 0..<sh {
                        let grow = s + (iy * sh + a) * wo
                        for b in 0..<sw {
                            let gb = grow + b
                            for i in 0..<w { drow[i] += gb[i &* sw] }
                        }
                    }
                }
            }
        }
        return gx
    }
}
