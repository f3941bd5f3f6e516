import Foundation

// Group normalisation (plain and fused with SiLU) and layer normalisation, with hand-written
// backward passes for the input, the weight and the bias.
//
// Statistics use a two-pass mean and population variance accumulated in Double, so large means
// and long groups stay accurate. Work is split over groups (group norm) or fixed chunks of rows
// (layer norm); reductions that cross chunks (weight and bias gradients) add per-chunk partial
// sums in chunk order, so results are identical for every `Engine.threads`.

extension Tensor {
    /// Group normalisation of x [N, C, ...]: the channels are split into `groups` consecutive
    /// groups, each (sample, group) is normalised by its own mean and population variance over
    /// its channels and all spatial positions, then scaled by `weight` [C] and shifted by
    /// `bias` [C] per channel. Matches `torch.nn.functional.group_norm(x, groups, weight, bias,
    /// eps)` (and `nn.GroupNorm`); `groups == C` is instance norm, `groups == 1` normalises each
    /// sample as a whole. Gradients flow to x, weight and bias. Keeps no running statistics.
    public func groupNorm(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        groupNormOp(groups: groups, weight: weight, bias: bias, eps: eps, silu: false)
    }

    /// `silu(groupNorm(...))` without a separate SiLU pass or intermediate tensor (the
    /// GroupNorm-then-SiLU of U-Net ResNet blocks). Matches `F.silu(F.group_norm(x, groups, weight, bias, eps))` up to Float rounding
    /// (the sigmoid uses a polynomial exp); the backward recomputes the normalised values instead
    /// of storing them.
    public func groupNormSiLU(groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        groupNormOp(groups: groups, weight: weight, bias: bias, eps: eps, silu: true)
    }

    private func groupNormOp(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool) -> Tensor {
        let op = silu ? "groupNormSiLU" : "groupNorm"
        precondition(rank >= 2, "\(op): input must be [N, C, ...], got shape \(shape)")
        let c = shape[1]
        precondition(groups > 0 && c % groups == 0, "\(op): \(c) channels do not split into \(groups) groups")
        if let weight { precondition(weight.shape == [c], "\(op): weight shape \(weight.shape), expected [\(c)]") }
        if let bias { precondition(bias.shape == [c], "\(op): bias shape \(bias.shape), expected [\(c)]") }
        let backend = Engine.backend
        let (out, saved) = backend.groupNorm(self, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
        let x = self
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        return out.recorded(op, inputs, backward: { g in
            let needs = GradientNeeds(input: x.requiresGrad, weight: weight?.requiresGrad ?? false, bias: bias?.requiresGrad ?? false)
            let (gx, gw, gb) = backend.groupNormBackward(gradient: g, input: x, saved: saved, groups: groups, weight: weight,
                                                         bias: bias, eps: eps, silu: silu, needs: needs)
            var grads: [Tensor?] = [gx]
            if weight != nil { grads.append(gw) }
            if bias != nil { grads.append(gb) }
            return grads
        }, differentiableBackward: { g in
            // Recomputed from recorded primitives (mean, variance, rsqrt, affine, silu) and differentiated.
            let r = Tensor.recomputedGradients([x, weight, bias], gradient: g) { xs in
                let y = Reference.groupNorm(xs[0]!, groups: groups, weight: xs[1], bias: xs[2], eps: eps)
                return silu ? y.silu() : y
            }
            var grads: [Tensor?] = [r[0]]
            if weight != nil { grads.append(r[1]) }
            if bias != nil { grads.append(r[2]) }
            return grads
        })
    }

    /// Layer normalisation over the trailing dimensions `normalizedShape` (default: the weight's
    /// shape, else the last dimension): each slice is normalised by its own mean and population
    /// variance, then scaled by `weight` and shifted by `bias` (both of shape `normalizedShape`,
    /// elementwise). Matches `torch.nn.functional.layer_norm(x, normalized_shape, weight, bias,
    /// eps)` (and `nn.LayerNorm`). Gradients flow to x, weight and bias.
    public func layerNorm(normalizedShape: [Int]? = nil, weight: Tensor? = nil, bias: Tensor? = nil,
                          eps: Float = 1e-5) -> Tensor {
        let ns = normalizedShape ?? weight?.shape ?? bias?.shape ?? [shape.last ?? 1]
        precondition(ns.count <= rank && Array(shape.suffix(ns.count)) == ns,
                     "layerNorm: normalized shape \(ns) is not the trailing shape of input \(shape)")
        if let weight { precondition(weight.shape == ns, "layerNorm: weight shape \(weight.shape), expected \(ns)") }
        if let bias { precondition(bias.shape == ns, "layerNorm: bias shape \(bias.shape), expected \(ns)") }
        let d = ns.reduce(1, *)
        let backend = Engine.backend
        let (out, saved) = backend.layerNorm(self, normalizedCount: d, weight: weight, bias: bias, eps: eps)
        let x = self
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        return out.recorded("layerNorm", inputs, backward: { g in
            let needs = GradientNeeds(input: x.requiresGrad, weight: weight?.requiresGrad ?? false, bias: bias?.requiresGrad ?? false)
            let (gx, gw, gb) = backend.layerNormBackward(gradient: g, input: x, saved: saved, normalizedCount: d, weight: weight,
                                                         bias: bias, eps: eps, needs: needs)
            var grads: [Tensor?] = [gx]
            if weight != nil { grads.append(gw) }
            if bias != nil { grads.append(gb) }
            return grads
        }, differentiableBackward: { g in
            let r = Tensor.recomputedGradients([x, weight, bias], gradient: g) { xs in
                Reference.layerNorm(xs[0]!, normalizedShape: ns, weight: xs[1], bias: xs[2], eps: eps)
            }
            var grads: [Tensor?] = [r[0]]
            if weight != nil { grads.append(r[1]) }
            if bias != nil { grads.append(r[2]) }
            return grads
        })
    }
}

// MARK: - CPU backend

extension CPUBackend {
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool)
        -> (output: Tensor, saved: AnyObject?) {
        let layout = GroupNormLayout(n: x.shape[0], c: x.shape[1], groups: groups, spatial: x.shape[2...].reduce(1, *))
        let out = Tensor.uninitialized(x.shape)
        let stats = groupNormForward(x: x.pointer, y: out.pointer, weight: weight?.pointer, bias: bias?.pointer,
                                     layout: layout, eps: eps, silu: silu)
        return (out, stats)
    }

    public func groupNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, groups: Int, weight: Tensor?, bias: Tensor?,
                                  eps: Float, silu: Bool, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        let x = input
        let layout = GroupNormLayout(n: x.shape[0], c: x.shape[1], groups: groups, spatial: x.shape[2...].reduce(1, *))
        let (gx, gw, gb) = TensorEngine.groupNormBackward(grad: gradient, x: x, stats: saved as! Tensor, weight: weight, bias: bias,
                                                          layout: layout, silu: silu, needs: needs)
        return (gx, gw, gb)
    }

    public func layerNorm(_ x: Tensor, normalizedCount d: Int, weight: Tensor?, bias: Tensor?, eps: Float)
        -> (output: Tensor, saved: AnyObject?) {
        let rows = d == 0 ? 0 : x.count / d
        let out = Tensor.uninitialized(x.shape)
        let stats = layerNormForward(x: x.pointer, y: out.pointer, weight: weight?.pointer, bias: bias?.pointer,
                                     rows: rows, d: d, eps: eps)
        return (out, stats)
    }

    public func layerNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, normalizedCount d: Int, weight: Tensor?,
                                  bias: Tensor?, eps: Float, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        let rows = d == 0 ? 0 : input.count / d
        let (gx, gw, gb) = TensorEngine.layerNormBackward(grad: gradient, x: input, stats: saved as! Tensor, weight: weight, bias: bias,
                                                          rows: rows, d: d, needs: needs)
        return (gx, gw, gb)
    }
}

// MARK: - Group norm kernels

struct GroupNormLayout {
    let n: Int, c: Int, groups: Int, spatial: Int
    var channelsPerGroup: Int { c / groups }
    /// Elements in one (sample, group): they are contiguous, at offset unit * groupSize for
    /// unit = sample * groups + group.
    var groupSize: Int { channelsPerGroup * spatial }
    var units: Int { n * groups }
}

/// Statistics of one normalised slice. The mean is kept as a Float pair hi + lo, and x - mean is
/// computed as (x - hi) - lo: x - hi is exact for x near the mean, so a large mean with a small
/// spread loses nothing to the rounding of the mean to Float.
struct SliceStatistics {
    var meanHi: Float, meanLo: Float, inverseStd: Float

    /// Two passes over n contiguous values, accumulated in Double.
    @inline(__always)
    init(_ p: UnsafePointer<Float>, _ n: Int, eps: Float) {
        let mean = n == 0 ? 0 : sumDouble(p, n) / Double(n)
        let variance = n == 0 ? 0 : sumSquaredDeviations(p, n, mean: mean) / Double(n)
        meanHi = Float(mean)
        meanLo = Float(mean - Double(meanHi))
        inverseStd = Float(1 / (variance + Double(eps)).squareRoot())
    }

    @inline(__always)
    init(at p: UnsafePointer<Float>) { meanHi = p[0]; meanLo = p[1]; inverseStd = p[2] }

    @inline(__always)
    func store(at p: UnsafeMutablePointer<Float>) { p[0] = meanHi; p[1] = meanLo; p[2] = inverseStd }

    var mean: Double { Double(meanHi) + Double(meanLo) }
}

/// Writes y and returns the statistics [units, 3] (see `SliceStatistics`) for the backward.
func groupNormForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                      weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                      layout L: GroupNormLayout, eps: Float, silu: Bool) -> Tensor {
    let stats = Tensor.uninitialized([L.units, 3])
    let st = stats.pointer
    let cg = L.channelsPerGroup, hw = L.spatial, m = L.groupSize, groups = L.groups
    parallelFor(L.units, grain: rowGrain(m)) { units in
        for u in units {
            let xg = x + u * m, yg = y + u * m
            let stat = SliceStatistics(xg, m, eps: eps)
            stat.store(at: st + 3 * u)
            let hi = stat.meanHi, lo = stat.meanLo
            for cl in 0..<cg {
                let ch = (u % groups) * cg + cl
                let a = stat.inverseStd * (weight?[ch] ?? 1), b = bias?[ch] ?? 0
                let xr = xg + cl * hw, yr = yg + cl * hw
                if silu { for i in 0..<hw { yr[i] = fastSiLU((xr[i] - hi - lo) * a + b) } }
                else { for i in 0..<hw { yr[i] = (xr[i] - hi - lo) * a + b } }
            }
        }
    }
    return stats
}

/// Gradients of group norm (optionally followed by SiLU). With z = xhat * w + b, dz = g (or
/// g * silu'(z)), per (sample, group) of m values with inverse std r:
///   dx = r (w dz - mean(w dz) - xhat mean(w dz xhat)),  dw[c] = sum dz xhat,  db[c] = sum dz.
func groupNormBackward(grad: Tensor, x: Tensor, stats: Tensor, weight: Tensor?, bias: Tensor?,
                       layout L: GroupNormLayout, silu: Bool, needs: GradientNeeds) -> (Tensor?, Tensor?, Tensor?) {
    let needX = needs.input, needW = needs.weight && weight != nil, needB = needs.bias && bias != nil
    if !needX && !needW && !needB { return (nil, nil, nil) }
    let cg = L.channelsPerGroup, hw = L.spatial, m = L.groupSize, groups = L.groups, c = L.c
    // gx holds dz first when SiLU is fused (then dx overwrites it in place).
    let gx = Tensor.uninitialized(x.shape)
    // Per (sample, channel): sum dz and sum dz (x - mean).
    let sums = UnsafeMutablePointer<Double>.allocate(capacity: Swift.max(2 * L.n * c, 1))
    defer { sums.deallocate() }
    let px = x.pointer, pg = grad.pointer, pd = gx.pointer, st = stats.pointer
    let w = weight?.pointer, b = bias?.pointer
    parallelFor(L.units, grain: rowGrain(m)) { units in
        for u in units {
            let g0 = u % groups, sample = u / groups
            let stat = SliceStatistics(at: st + 3 * u)
            let hi = stat.meanHi, lo = stat.meanLo, rstd = stat.inverseStd
            let xg = px + u * m, dg = pd + u * m
            var dz = UnsafePointer(pg + u * m)
            if silu {
                for cl in 0..<cg {
                    let ch = g0 * cg + cl
                    let a = rstd * (w?[ch] ?? 1), sh = b?[ch] ?? 0
                    let xr = xg + cl * hw, gr = pg + u * m + cl * hw, dr = dg + cl * hw
                    for i in 0..<hw {
                        let z = (xr[i] - hi - lo) * a + sh
                        let s = fastSigmoid(z)
                        dr[i] = gr[i] * s * (1 + z * (1 - s))
                    }
                }
                dz = UnsafePointer(dg)
            }
            var sumWDz = 0.0, sumWDzCentered = 0.0
            for cl in 0..<cg {
                let ch = g0 * cg + cl
                let (s1, s2) = sumAndCenteredDot(dz + cl * hw, xg + cl * hw, hw, mean: stat.mean)
                sums[2 * (sample * c + ch)] = s1
                sums[2 * (sample * c + ch) + 1] = s2
                let wc = Double(w?[ch] ?? 1)
                sumWDz += wc * s1
                sumWDzCentered += wc * s2
            }
            if needX {
                let r = Double(rstd), count = Double(Swift.max(m, 1))
                let kx = Float(-r * r * r * sumWDzCentered / count), k0 = Float(-r * sumWDz / count)
                for cl in 0..<cg {
                    let ch = g0 * cg + cl
                    let kd = rstd * (w?[ch] ?? 1)
                    let xr = xg + cl * hw, dzr = dz + cl * hw, dr = dg + cl * hw
                    for i in 0..<hw { dr[i] = kd * dzr[i] + kx * (xr[i] - hi - lo) + k0 }
                }
            }
        }
    }
    var gw: Tensor? = nil, gb: Tensor? = nil
    if needW {
        let t = Tensor.uninitialized([c])
        for ch in 0..<c {
            var acc = 0.0
            for s in 0..<L.n { acc += sums[2 * (s * c + ch) + 1] * Double(st[3 * (s * groups + ch / cg) + 2]) }
            t.pointer[ch] = Float(acc)
        }
        gw = t
    }
    if needB {
        let t = Tensor.uninitialized([c])
        for ch in 0..<c {
            var acc = 0.0
            for s in 0..<L.n { acc += sums[2 * (s * c + ch)] }
            t.pointer[ch] = Float(acc)
        }
        gb = t
    }
    return (needX ? gx : nil, gw, gb)
}

// MARK: - Layer norm kernels

/// Writes y and returns the statistics [rows, 3] (see `SliceStatistics`) for the backward.
func layerNormForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                      weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                      rows: Int, d: Int, eps: Float) -> Tensor {
    let stats = Tensor.uninitialized([rows, 3])
    let st = stats.pointer
    parallelFor(rows, grain: rowGrain(d)) { range in
        for r in range {
            let xr = x + r * d, yr = y + r * d
            let stat = SliceStatistics(xr, d, eps: eps)
            stat.store(at: st + 3 * r)
            let hi = stat.meanHi, lo = stat.meanLo, rstd = stat.inverseStd
            switch (weight, bias) {
            case let (w?, b?): for j in 0..<d { yr[j] = (xr[j] - hi - lo) * rstd * w[j] + b[j] }
            case let (w?, nil): for j in 0..<d { yr[j] = (xr[j] - hi - lo) * rstd * w[j] }
            case let (nil, b?): for j in 0..<d { yr[j] = (xr[j] - hi - lo) * rstd + b[j] }
            case (nil, nil): for j in 0..<d { yr[j] = (xr[j] - hi - lo) * rstd }
            }
        }
    }
    return stats
}

/// Gradients of layer norm. Per row with inverse std r and dxhat = g w:
///   dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dw = sum over rows of g xhat,
///   db = sum over rows of g. The row sums for dw and db go through fixed chunks of rows.
func layerNormBackward(grad: Tensor, x: Tensor, stats: Tensor, weight: Tensor?, bias: Tensor?,
                       rows: Int, d: Int, needs: GradientNeeds) -> (Tensor?, Tensor?, Tensor?) {
    let needX = needs.input, needW = needs.weight && weight != nil, needB = needs.bias && bias != nil
    if !needX && !needW && !needB { return (nil, nil, nil) }
    let gx = Tensor.uninitialized(x.shape)
    let rowsPerChunk = rowGrain(d)
    let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
    let needParams = needW || needB
    // Per chunk: partial dw (d values) then partial db (d values), in Double.
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: needParams ? Swift.max(chunks * 2 * d, 1) : 1)
    defer { partials.deallocate() }
    let px = x.pointer, pg = grad.pointer, pd = gx.pointer, st = stats.pointer
    let w = weight?.pointer
    parallelChunks(chunks) { chunk in
        let pw = partials + chunk * 2 * d, pb = pw + d
        if needParams { pw.initialize(repeating: 0, count: 2 * d) }
        for r in (chunk * rowsPerChunk)..<Swift.min(rows, (chunk + 1) * rowsPerChunk) {
            let xr = px + r * d, gr = pg + r * d, dr = pd + r * d
            let stat = SliceStatistics(at: st + 3 * r)
            let hi = stat.meanHi, lo = stat.meanLo, rstd = stat.inverseStd
            if needParams {
                for j in 0..<d {
                    let gj = Double(gr[j])
                    pw[j] += gj * Double((xr[j] - hi - lo) * rstd)
                    pb[j] += gj
                }
            }
            guard needX else { continue }
            // dxhat goes to dr first, then dx overwrites it.
            if let w { for j in 0..<d { dr[j] = gr[j] * w[j] } } else { dr.update(from: gr, count: d) }
            let (sumDxhat, sumDxhatCentered) = sumAndCenteredDot(dr, xr, d, mean: stat.mean)
            let rd = Double(rstd), count = Double(d)
            let kx = Float(-rd * rd * rd * sumDxhatCentered / count), k0 = Float(-rd * sumDxhat / count)
            for j in 0..<d { dr[j] = rstd * dr[j] + kx * (xr[j] - hi - lo) + k0 }
        }
    }
    func reduceChunks(_ offset: Int, _ shape: [Int]) -> Tensor {
        let t = Tensor.uninitialized(shape), o = t.pointer
        for j in 0..<d {
            var acc = 0.0
            for chunk in 0..<chunks { acc += partials[chunk * 2 * d + offset + j] }
            o[j] = Float(acc)
        }
        return t
    }
    let gw = needW ? reduceChunks(0, weight!.shape) : nil
    let gb = needB ? reduceChunks(d, bias!.shape) : nil
    return (needX ? gx : nil, gw, gb)
}
