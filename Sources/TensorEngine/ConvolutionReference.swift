// Plain reference implementations of the image ops: direct loops, written for clarity, not speed.
// Tests compare the fast kernels (Convolution.swift, Pooling.swift) with these. None records
// history. Each accumulates in Double, so it is also the more accurate of the two.

/// The size of a 2-D convolution: input [n, c, h, w], weight [o, c / groups, kh, kw], output
/// [n, o, ho, wo], stride (sh, sw), zero padding (ph, pw), dilation 1.
public struct Conv2dGeometry: Equatable, CustomStringConvertible {
    public let n: Int, c: Int, h: Int, w: Int
    public let o: Int, kh: Int, kw: Int
    public let sh: Int, sw: Int, ph: Int, pw: Int
    public let groups: Int
    public let ho: Int, wo: Int

    /// Checks shapes the way `torch.nn.functional.conv2d` does and derives the output size.
    public init(input: [Int], weight: [Int], stride: (Int, Int), padding: (Int, Int), groups: Int) {
        precondition(input.count == 4, "conv2d: input must be [N, C, H, W], got \(input)")
        precondition(weight.count == 4, "conv2d: weight must be [O, C/groups, kH, kW], got \(weight)")
        precondition(groups >= 1, "conv2d: groups must be >= 1, got \(groups)")
        precondition(stride.0 >= 1 && stride.1 >= 1, "conv2d: stride must be >= 1, got \(stride)")
        precondition(padding.0 >= 0 && padding.1 >= 0, "conv2d: padding must be >= 0, got \(padding)")
        n = input[0]; c = input[1]; h = input[2]; w = input[3]
        o = weight[0]; kh = weight[2]; kw = weight[3]
        sh = stride.0; sw = stride.1; ph = padding.0; pw = padding.1
        self.groups = groups
        precondition(c % groups == 0 && o % groups == 0,
                     "conv2d: channels in \(c) and out \(o) must both be divisible by groups \(groups)")
        precondition(weight[1] * groups == c,
                     "conv2d: weight \(weight) expects \(weight[1] * groups) input channels, input \(input) has \(c)")
        precondition(kh >= 1 && kw >= 1, "conv2d: empty kernel in weight \(weight)")
        precondition(h + 2 * ph >= kh && w + 2 * pw >= kw,
                     "conv2d: kernel \(kh)x\(kw) larger than padded input \(h + 2 * ph)x\(w + 2 * pw)")
        ho = (h + 2 * ph - kh) / sh + 1
        wo = (w + 2 * pw - kw) / sw + 1
    }

    public var cg: Int { c / groups }
    public var og: Int { o / groups }
    public var inputShape: [Int] { [n, c, h, w] }
    public var weightShape: [Int] { [o, cg, kh, kw] }
    public var outputShape: [Int] { [n, o, ho, wo] }
    /// Multiply-adds times two of the forward pass (the usual "FLOPs" of a convolution).
    public var flops: Double { 2.0 * Double(n * o * ho * wo) * Double(cg * kh * kw) }

    public var description: String {
        "[\(n),\(c),\(h),\(w)] * [\(o),\(cg),\(kh),\(kw)] s(\(sh),\(sw)) p(\(ph),\(pw)) g\(groups) -> [\(n),\(o),\(ho),\(wo)]"
    }
}

/// Direct-loop versions of the image ops, the yardstick for the fast kernels.
extension Reference {
    /// Calls `term(out, in, w)` with the flat indices of output, input and weight elements for every
    /// product in[in] * w[w] that the convolution adds into out[out] (taps outside the input skipped).
    private static func forEachTerm(_ g: Conv2dGeometry, _ term: (Int, Int, Int) -> Void) {
        for n in 0..<g.n { for o in 0..<g.o {
            let grp = o / g.og
            for oy in 0..<g.ho { for ox in 0..<g.wo {
                let out = ((n * g.o + o) * g.ho + oy) * g.wo + ox
                for ci in 0..<g.cg {
                    let c = grp * g.cg + ci
                    for ky in 0..<g.kh {
                        let iy = oy * g.sh - g.ph + ky
                        if iy < 0 || iy >= g.h { continue }
                        for kx in 0..<g.kw {
                            let ix = ox * g.sw - g.pw + kx
                            if ix < 0 || ix >= g.w { continue }
                            term(out, ((n * g.c + c) * g.h + iy) * g.w + ix, ((o * g.cg + ci) * g.kh + ky) * g.kw + kx)
                        }
                    }
                }
            } }
        } }
    }

    /// out[n,o,y,x] = bias[o] + sum over c in o's group, ky, kx of
    /// in[n,c,y*sh-ph+ky, x*sw-pw+kx] * w[o,c,ky,kx] (zero outside the input).
    public static func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor?, _ g: Conv2dGeometry) -> Tensor {
        let plane = g.ho * g.wo
        var acc = (0..<(g.n * g.o * plane)).map { Double(bias?.pointer[($0 / plane) % g.o] ?? 0) }
        let px = x.pointer, pw = weight.pointer
        forEachTerm(g) { o, i, w in acc[o] += Double(px[i]) * Double(pw[w]) }
        return Tensor(shape: g.outputShape, acc.map { Float($0) })
    }

    /// The gradient of `conv2d` with respect to its input, given the output gradient.
    public static func conv2dBackwardInput(_ gradOut: Tensor, _ weight: Tensor, _ g: Conv2dGeometry) -> Tensor {
        var acc = [Double](repeating: 0, count: g.n * g.c * g.h * g.w)
        let pg = gradOut.pointer, pw = weight.pointer
        forEachTerm(g) { o, i, w in acc[i] += Double(pg[o]) * Double(pw[w]) }
        return Tensor(shape: g.inputShape, acc.map { Float($0) })
    }

    /// The gradient of `conv2d` with respect to its weight, given the output gradient.
    public static func conv2dBackwardWeight(_ gradOut: Tensor, _ x: Tensor, _ g: Conv2dGeometry) -> Tensor {
        var acc = [Double](repeating: 0, count: g.o * g.cg * g.kh * g.kw)
        let pg = gradOut.pointer, px = x.pointer
        forEachTerm(g) { o, i, w in acc[w] += Double(pg[o]) * Double(px[i]) }
        return Tensor(shape: g.weightShape, acc.map { Float($0) })
    }

    /// The gradient of `conv2d` with respect to its bias: the output gradient summed over n, y, x.
    public static func conv2dBackwardBias(_ gradOut: Tensor) -> Tensor {
        let s = gradOut.shape
        let (n, o, hw) = (s[0], s[1], s[2] * s[3])
        var acc = [Double](repeating: 0, count: o)
        for b in 0..<n { for c in 0..<o { for i in 0..<hw { acc[c] += Double(gradOut.pointer[(b * o + c) * hw + i]) } } }
        return Tensor(shape: [o], acc.map { Float($0) })
    }

    /// Mean over each kh x kw window taken every (sh, sw), no padding, floor rounding of the size.
    public static func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h - kernel.0) / stride.0 + 1, wo = (w - kernel.1) / stride.1 + 1
        let out = Tensor.uninitialized([n, c, ho, wo])
        for p in 0..<(n * c) { for oy in 0..<ho { for ox in 0..<wo {
            var acc = 0.0
            for ky in 0..<kernel.0 { for kx in 0..<kernel.1 {
                acc += Double(x.pointer[(p * h + oy * stride.0 + ky) * w + ox * stride.1 + kx])
            } }
            out.pointer[(p * ho + oy) * wo + ox] = Float(acc / Double(kernel.0 * kernel.1))
        } } }
        return out
    }

    /// The gradient of `avgPool2d` with respect to its input.
    public static func avgPool2dBackward(_ gradOut: Tensor, inputShape: [Int], kernel: (Int, Int),
                                         stride: (Int, Int)) -> Tensor {
        let (h, w) = (inputShape[2], inputShape[3])
        let (ho, wo) = (gradOut.shape[2], gradOut.shape[3])
        var acc = [Double](repeating: 0, count: Tensor.elementCount(inputShape))
        let scale = 1.0 / Double(kernel.0 * kernel.1)
        for p in 0..<(inputShape[0] * inputShape[1]) { for oy in 0..<ho { for ox in 0..<wo {
            let gv = Double(gradOut.pointer[(p * ho + oy) * wo + ox]) * scale
            for ky in 0..<kernel.0 { for kx in 0..<kernel.1 {
                acc[(p * h + oy * stride.0 + ky) * w + ox * stride.1 + kx] += gv
            } }
        } } }
        return Tensor(shape: inputShape, acc.map { Float($0) })
    }

    /// out[n,c,y,x] = in[n,c,y/sh,x/sw] (nearest-neighbour upsampling by integer factors).
    public static func upsampleNearest(_ x: Tensor, scale: (Int, Int)) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (ho, wo) = (h * scale.0, w * scale.1)
        let out = Tensor.uninitialized([n, c, ho, wo])
        for p in 0..<(n * c) { for y in 0..<ho { for xx in 0..<wo {
            out.pointer[(p * ho + y) * wo + xx] = x.pointer[(p * h + y / scale.0) * w + xx / scale.1]
        } } }
        return out
    }

    /// The gradient of `upsampleNearest`: each input position gets the sum of its sh x sw block.
    public static func upsampleNearestBackward(_ gradOut: Tensor, scale: (Int, Int)) -> Tensor {
        let (n, c, ho, wo) = (gradOut.shape[0], gradOut.shape[1], gradOut.shape[2], gradOut.shape[3])
        let (h, w) = (ho / scale.0, wo / scale.1)
        var acc = [Double](repeating: 0, count: n * c * h * w)
        for p in 0..<(n * c) { for y in 0..<ho { for xx in 0..<wo {
            acc[(p * h + y / scale.0) * w + xx / scale.1] += Double(gradOut.pointer[(p * ho + y) * wo + xx])
        } } }
        return Tensor(shape: [n, c, h, w], acc.map { Float($0) })
    }
}
