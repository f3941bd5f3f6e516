import Foundation
import TensorEngine

/// Errors restoring optimizer or EMA state from a checkpoint.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

/// AdamW with decoupled weight decay. Matches `torch.optim.AdamW` (amsgrad off, maximize off):
/// p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
/// With `weightDecay` 0 it is Adam. Parameters without a gradient are skipped (their step count
/// still advances, as torch's single shared step would not, so keep every parameter in use).
public final class AdamW {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public private(set) var step = 0
    private var m: [Tensor]
    private var v: [Tensor]

    public init(parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 1e-2) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = parameters.map { Tensor.zeros($0.shape) }
        v = parameters.map { Tensor.zeros($0.shape) }
    }

    /// Applies one update from the parameters' `grad`.
    public func update() {
        step += 1
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = eps
        let decay = 1 - lr * weightDecay
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let c2 = 1 - Float(Foundation.pow(Double(b2), Double(step)))
        let constants = AdamWStep(beta1: b1, beta2: b2, eps: eps, decay: decay, stepSize: lr / c1,
                                  secondMomentCorrectionRoot: c2.squareRoot())
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.shape == p.shape, "AdamW: gradient \(g.shape) for parameter \(p.shape)")
            p.applyAdamW(gradient: g, firstMoment: m[i], secondMoment: v[i], constants)
        }
    }

    /// Moments and step as tensors keyed "m.<i>", "v.<i>", "step", for checkpoints.
    public func state() -> [String: Tensor] {
        var out: [String: Tensor] = ["step": Tensor(Float(step))]
        for i in parameters.indices { out["m.\(i)"] = m[i].copy(); out["v.\(i)"] = v[i].copy() }
        return out
    }

    public func restore(_ state: [String: Tensor]) throws {
        guard let s = state["step"], s.count == 1 else { throw OptimizerStateError(description: "optimizer state has no 'step'") }
        for i in parameters.indices {
            guard let mi = state["m.\(i)"], let vi = state["v.\(i)"], mi.shape == parameters[i].shape, vi.shape == parameters[i].shape else {
                throw OptimizerStateError(description: "optimizer state for parameter \(i) is missing or has the wrong shape")
            }
            m[i].assign(mi); v[i].assign(vi)
        }
        step = Int(s.item)
    }
}

/// Plain SGD with optional momentum (torch.optim.SGD, dampening 0, no Nesterov).
public final class SGD {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var momentum: Float
    private var velocity: [Tensor]

    public init(parameters: [Tensor], learningRate: Float, momentum: Float = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        velocity = parameters.map { Tensor.zeros($0.shape) }
    }

    public func update() {
        let lr = learningRate, mu = momentum
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            // v = mu v + g; p = p - lr v (in place; the same roundings as the scalar loop).
            velocity[i].scaleAndAdd(mu, g, 1)
            p.scaleAndAdd(1, velocity[i], -lr)
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before
/// clipping. Matches `torch.nn.utils.clip_grad_norm_` (norm type 2, eps 1e-6).
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    let total = Tensor.sumOfSquares(parameters.compactMap(\.grad))
    let norm = Float(total.squareRoot())
    let scale = maxNorm / (norm + 1e-6)
    if scale < 1 {
        for p in parameters {
            guard let g = p.grad else { continue }
            // Gradients may be shared with other tensors: a scaled copy.
            p.grad = g * scale
        }
    }
    return norm
}

/// Exponential moving average of parameters (diffusers' EMAModel without power warm-up):
/// shadow = decay_t * shadow + (1 - decay_t) * param, decay_t = min(decay, (1 + t) / (10 + t)).
public final class ExponentialMovingAverage {
    public let decay: Float
    public private(set) var shadow: [Tensor]
    public private(set) var updates = 0

    public init(parameters: [Tensor], decay: Float = 0.999) {
        self.decay = decay
        shadow = parameters.map { $0.copy() }
    }

    public func update(_ parameters: [Tensor]) {
        precondition(parameters.count == shadow.count, "EMA: \(parameters.count) parameters for \(shadow.count) averages")
        updates += 1
        let t = Float(updates)
        let d = Swift.min(decay, (1 + t) / (10 + t))
        for (s, p) in zip(shadow, parameters) { s.scaleAndAdd(d, p, 1 - d) }
    }

    /// Writes the averages into `parameters` (e.g. before saving the EMA model).
    public func copy(to parameters: [Tensor]) {
        for (s, p) in zip(shadow, parameters) { p.assign(s) }
    }

    public func state() -> [String: Tensor] {
        var out: [String: Tensor] = ["updates": Tensor(Float(updates))]
        for (i, s) in shadow.enumerated() { out["ema.\(i)"] = s.copy() }
        return out
    }

    public func restore(_ state: [String: Tensor]) throws {
        guard let u = state["updates"], u.count == 1 else { throw OptimizerStateError(description: "EMA state has no 'updates'") }
        for i in shadow.indices {
            guard let s = state["ema.\(i)"], s.shape == shadow[i].shape else {
                throw OptimizerStateError(description: "EMA state for parameter \(i) is missing or has the wrong shape")
            }
            shadow[i].assign(s)
        }
        updates = Int(u.item)
    }
}
