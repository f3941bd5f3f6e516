import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// An EDM denoiser scored by the diffusion classifiers over a grid of noise levels (RDC's
/// sigma grid): a `ConditionalNoisePredictor` over the grid's timesteps 0..<N and a
/// `NoiseLevelDenoiser` at any sigma.
///
/// The classifiers noise a clean sample x0 at timestep k of the grid's schedule
/// (`SigmaGrid.schedule`): x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, which is
/// (x0 + sigma_k eps) / sqrt(1 + sigma_k^2). `predict` undoes that scale
/// (x = x_k / sqrt(abar_k) = x0 + sigma_k eps, EDM's noisy sample), runs D(x; sigma_k, y) and
/// returns the noise it implies, eps_hat = (x - D) / sigma_k. Then the eps-space error is the
/// x0-space error over sigma_k^2: mean (eps_hat - eps)^2 = mean (D - x0)^2 / sigma_k^2 (up to
/// float32 rounding of the scale), so a weighting of sigma_k^2 w(sigma_k) on it is RDC's
/// w(sigma) mean (D - x0)^2 (`TimestepWeighting.rdc`).
///
/// Conditions are class ids (as Float): c in 0..<label_dim is the one-hot label of class c, and
/// c = label_dim (`unconditional`) the zero label vector, which is what EDM feeds with
/// `class_labels=None` (RDC's unconditional model for likelihood maximization). A model with
/// label_dim 0 is unconditional and takes only that condition (or none).
public final class EDMNoisePredictor: ConditionalNoisePredictor, NoiseLevelDenoiser {
    public let model: EDMModel
    public let grid: SigmaGrid
    public let schedule: NoiseSchedule
    private let levels: [Float]

    public init(model: EDMModel, grid: SigmaGrid) {
        self.model = model
        self.grid = grid
        schedule = grid.schedule(prediction: .epsilon)
        levels = grid.levels.map { Float($0) }
    }

    /// Classes 0..<label_dim.
    public var classCount: Int { model.labelDim }
    /// The condition whose label is the zero vector.
    public var unconditional: Int { model.labelDim }

    /// [N, label_dim] labels for class ids (one-hot, zero rows for `unconditional`); nil for an
    /// unconditional model or no conditions.
    func labels(_ conditions: Tensor?, count: Int) -> Tensor? {
        let k = model.labelDim
        guard let conditions else { return nil }
        let ids = conditions.scalars.map { Int($0) }
        precondition(ids.count == count, "EDMNoisePredictor: \(ids.count) conditions for \(count) samples")
        guard k > 0 else {
            precondition(ids.allSatisfy { $0 == 0 }, "EDMNoisePredictor: the model is unconditional (label_dim 0): only condition 0")
            return nil
        }
        var rows = [Float](repeating: 0, count: count * k)
        for (i, c) in ids.enumerated() {
            precondition(c >= 0 && c <= k, "EDMNoisePredictor: condition \(c) outside 0...\(k) (\(k) = unconditional)")
            if c < k { rows[i * k + c] = 1 }
        }
        return Tensor(shape: [count, k], rows)
    }

    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        let n = sample.shape[0]
        precondition(timesteps.count == n, "EDMNoisePredictor: \(timesteps.count) timesteps for batch \(n)")
        let ts: [Int] = timesteps.map { t in
            let k = Int(t)
            precondition(Float(k) == t && k >= 0 && k < levels.count, "EDMNoisePredictor: timestep \(t) is not a level of the grid \(grid)")
            return k
        }
        let signal = Tensor(shape: [n, 1, 1, 1], ts.map { schedule.coefficients($0).signal })
        let sigmas = ts.map { levels[$0] }
        let x = sample / signal
        let d = model(x, sigma: sigmas, classLabels: labels(conditions, count: n))
        return (x - d) / Tensor(shape: [n, 1, 1, 1], sigmas)
    }

    public func denoise(_ noisy: Tensor, sigmas: [Float], conditions: Tensor?) -> Tensor {
        model(noisy, sigma: sigmas, classLabels: labels(conditions, count: noisy.shape[0]))
    }
}
