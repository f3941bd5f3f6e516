import Foundation

/// ||a - b|| / ||b|| over all elements, accumulated in Double: the measure the parity tests use
/// against PyTorch fixtures (a tolerance on the whole tensor, like `torch.testing` with a norm).
/// Different shapes give +infinity, so a threshold check fails instead of comparing a prefix.
public func relativeDifference(_ a: Tensor, _ b: Tensor) -> Double {
    guard a.shape == b.shape else { return .infinity }
    var num = 0.0, den = 0.0
    let pa = a.scalars, pb = b.scalars
    for i in 0..<pa.count {
        let d = Double(pa[i]) - Double(pb[i])
        num += d * d
        den += Double(pb[i]) * Double(pb[i])
    }
    return (num / Swift.max(den, 1e-30)).squareRoot()
}
