/// H v of `loss` with respect to `leaves` (tensors that require gradients, used by `loss`: inputs
/// or parameters) along `directions`, from a double backward, against central finite differences
/// of ordinary gradients, (grad(leaves + h v) - grad(leaves - h v)) / 2h, the leaves shifted in
/// place and restored: the second-order counterpart of a gradient check, for tests. Returns max |analytic - numeric| / max |numeric| and max |numeric|.
public func hessianVectorProductAgainstFiniteDifferences(leaves: [Tensor], directions: [Tensor], h: Float,
                                                         _ loss: () -> Tensor) throws -> (error: Double, scale: Double) {
    let value = Autograd.withGrad { loss() }
    let analytic = try hessianVectorProduct(of: value, wrt: leaves, along: directions).product
    let originals = leaves.map { $0.copy() }
    func gradientsShifted(_ s: Float) throws -> [Tensor] {
        for (leaf, (x0, v)) in zip(leaves, zip(originals, directions)) { leaf.assign(Autograd.noGrad { x0 + v * s }) }
        return try gradient(of: Autograd.withGrad { loss() }, wrt: leaves)
    }
    let plus = try gradientsShifted(h), minus = try gradientsShifted(-h)
    for (leaf, x0) in zip(leaves, originals) { leaf.assign(x0) }
    var scale = 0.0, worst = 0.0
    var numeric: [[Float]] = []
    for k in leaves.indices {
        let n = Autograd.noGrad { (plus[k] - minus[k]) * (1 / (2 * h)) }.scalars
        numeric.append(n)
        scale = Swift.max(scale, Double(n.map { Swift.abs($0) }.max() ?? 0))
    }
    for k in leaves.indices {
        for (a, n) in zip(analytic[k].scalars, numeric[k]) { worst = Swift.max(worst, Double(Swift.abs(a - n))) }
    }
    return (worst / Swift.max(scale, 1e-30), scale)
}
