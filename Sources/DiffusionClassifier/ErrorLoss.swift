import TensorEngine

/// The per-(class, timestep) error between the true noise eps and the predicted noise, averaged
/// over every element of the image (C x H x W), as the public Diffusion Classifier code does with
/// `F.mse_loss`, `F.l1_loss` and `F.huber_loss` (`reduction='none'` then `.mean(dim=(1, 2, 3))`).
///
/// - `l2`: (eps_hat - eps)^2
/// - `l1`: |eps_hat - eps|
/// - `huber`: PyTorch's `huber_loss` with delta = 1 (equal to `smooth_l1_loss` with beta = 1):
///   0.5 d^2 where |d| < 1, else |d| - 0.5.
///
/// Differs from PyTorch only in arithmetic: the mean is accumulated in Float64 in element order
/// (PyTorch reduces in float32, pairwise), so values agree to float32 rounding, not bit for bit.
public enum ErrorLoss: String, Codable, CaseIterable, Sendable {
    case l2, l1, huber

    /// The loss of one element, `d` = prediction - target.
    @inlinable public func value(_ d: Float) -> Double {
        let x = Double(d)
        switch self {
        case .l2: return x * x
        case .l1: return Swift.abs(x)
        case .huber: return Swift.abs(x) < 1 ? 0.5 * x * x : Swift.abs(x) - 0.5
        }
    }

    /// The engine's loss of this kind (the same formulas as `value`).
    public var pointwise: PointwiseLoss {
        switch self {
        case .l2: return .squared
        case .l1: return .absolute
        case .huber: return .huber
        }
    }

    /// Mean loss per batch item: `prediction` and `target` are [N, ...]; returns N values
    /// (`Tensor.rowMeanLoss`: the sum of `value` over each item in Float64, in element order).
    public func perItem(prediction: Tensor, target: Tensor) -> [Double] {
        precondition(prediction.shape == target.shape, "ErrorLoss: prediction \(prediction.shape) vs target \(target.shape)")
        return prediction.rowMeanLoss(target: target, pointwise)
    }
}
