import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// RDC's likelihood maximization (LM): before classifying, move the input a little towards
/// higher likelihood under the UNCONDITIONAL model (the null class) by minimizing the
/// unconditional denoising loss
///
///     l(x') = sum_n mean_CHW (eps_n - eps_theta(x'_t, t_n, null))^2,  x'_0 = encode(x') (2x' - 1 in pixel space),
///
/// with one timestep t_n and one eps_n per image per step, inside a ball around the input x
/// (l_inf or l_2) and [0, 1]. Both published variants:
///
/// - `.paper` (RDC paper): projected steepest-descent steps. l_inf: x' <- proj(x' - alpha sign(g)),
///   the paper's setting (eta = 8/255, N = 5). The paper does not give alpha here; the default
///   is alpha = eta / N (so N steps can just reach the ball's surface; `step=` overrides). l_2:
///   x' <- proj(x' - alpha g / ||g||_2) (the l_2 steepest-descent step; not in the paper).
/// - `.code` (public code): Adam (betas 0.9, 0.999, eps 1e-8), lr 0.1 in [-1, 1] units (0.05 in
///   [0, 1] units), then the same projection (the public code's projection is not
///   reproduced; here both variants project).
///
/// Timesteps: sigma ~ U[0.4, 0.6] (the public code's range) mapped to the timestep whose
/// sqrt((1 - abar_t) / abar_t) is nearest, for both variants (the paper says only "one timestep
/// per step"); `t=A:B` draws t uniformly from A..<B instead.
///
/// In sigma-space (a `NoiseLevelDenoiser` given, such as an EDM denoiser, and no `t=A:B`), sigma
/// is used as drawn, not rounded to a timestep, and the loss is RDC's own,
/// `sum_n mean_CHW (D(x'_0 + sigma_n eps_n; sigma_n, null) - x'_0)^2` (the public code's
/// `mse_loss(denoised, x)` averages over the batch too; the factor 1/N changes neither the sign
/// steps nor Adam's, up to Adam's 1e-8). Its gradient is the eps-space loss's times sigma_n^2 per
/// image, so only the continuous sigma differs from the timestep form.
///
/// Gradients through LM (`gradient`):
/// - `.exact`: the N steps are unrolled with autodiff recording and each inner gradient
///   g(x') = d l / d x' is itself recorded (a create-graph backward pass), so the derivative of
///   LM(x) is exact for every variant, as PyTorch's `create_graph=True` gives it:
///   - paper, l_inf: x' <- proj(x' - alpha sign(g)). sign has derivative 0 almost everywhere,
///     so the exact derivative flows only through the x' term of each update and through the
///     projections (diagonal 0/1: 1 inside [0, 1] and on the ball's faces x' = x +- eta, 0 where
///     the [0, 1] clip binds): BPDA with a clip mask. The inner gradient's own derivative (the
///     Hessian) is multiplied by sign' = 0, so it is not recorded (same result, no extra cost).
///   - paper, l_2: x' <- proj(x' - alpha g / ||g||): the direction's derivative
///     (I - u u^T) H / ||g|| (u = g / ||g||, H the Hessian of l) enters through Hessian-vector
///     products, with the projection's rescaling and clip.
///   - code (Adam): m, v and the step m_hat / (sqrt(v_hat) + eps) are recorded functions of
///     every inner gradient (RDC's differentiable Adam: the moments are not detached), so their
///     derivatives enter through Hessian-vector products.
///   Cost: each step keeps its forward and backward graphs until the outer backward; the outer
///   backward costs about two backward passes more per step than the first-order unrolling
///   (the `make bench` cases `unet_input_gradient` / `unet_input_hvp` measure one of each).
///   When nothing will differentiate the result (recording off, or x needs no gradient) the
///   steps run as plain gradient steps, with the same values up to rounding.
/// - `.firstOrder`: the N steps are unrolled and recorded but each inner gradient enters its
///   update as a constant (exact for paper l_inf; for l_2 and Adam only the projections and the
///   x' terms are differentiated: not the exact derivative, cheaper).
/// - `.bpda`: LM runs unrecorded and the output is x + (LM(x) - x) with the difference a
///   constant: identity gradient (BPDA), how RDC was attacked.
///
/// Randomness: image n of the batch, step i draws its timestep from
/// `RandomGenerator(seed: randomness).derived(n).derived(i)` and its eps from that generator's
/// `derived(1)`: the same seed gives the same result, whatever the batch's other images.
public struct LikelihoodMaximization: Equatable, Sendable, CustomStringConvertible {
    public enum Variant: String, Sendable, CaseIterable { case paper, code }
    public enum Norm: String, Sendable, CaseIterable { case linf, l2 }
    public enum Gradient: String, Sendable, CaseIterable { case exact, firstOrder = "first-order", bpda }

    public var variant: Variant = .paper
    public var steps = 5
    /// Ball radius in [0, 1] pixel units.
    public var eta: Double = 8.0 / 255.0
    public var norm: Norm = .linf
    /// Paper variant step alpha in [0, 1] units; nil: eta / steps.
    public var stepSize: Double?
    /// Code variant Adam learning rate in [-1, 1] units.
    public var learningRate: Double = 0.1
    public var sigmaRange: ClosedRange<Double> = 0.4...0.6
    /// When set, timesteps are drawn uniformly from this range instead of via `sigmaRange`.
    public var timestepRange: Range<Int>?
    public var gradient: Gradient = .exact

    public init() {}

    /// The paper variant's step in [0, 1] units.
    public var alpha: Double { stepSize ?? eta / Double(steps) }

    /// Parses `key=value,...` with keys steps, eta (a number or a fraction like 8/255),
    /// variant (paper|code), norm (linf|l2), step, lr, sigma=LO:HI, t=A:B, grad (exact|first-order|bpda).
    /// Errors name `Setting.lm`.
    public init(parsing text: String) throws {
        self.init()
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[1].isEmpty else { throw ClassifierError(.lm, "'\(item)' is not key=value") }
            let (key, value) = (parts[0], parts[1])
            func bad(_ what: String) -> ClassifierError { ClassifierError(.lm, "bad value '\(value)' for '\(key)' (\(what))") }
            switch key {
            case "steps":
                guard let n = Int(value), n >= 0 else { throw bad("a non-negative integer") }
                steps = n
            case "eta":
                guard let v = Self.number(value), v >= 0 else { throw bad("a non-negative number or fraction like 8/255") }
                eta = v
            case "step":
                guard let v = Self.number(value), v > 0 else { throw bad("a positive number or fraction") }
                stepSize = v
            case "lr":
                guard let v = Self.number(value), v > 0 else { throw bad("a positive number") }
                learningRate = v
            case "variant":
                guard let v = Variant(rawValue: value) else { throw bad("paper or code") }
                variant = v
            case "norm":
                guard let v = Norm(rawValue: value) else { throw bad("linf or l2") }
                norm = v
            case "grad":
                guard let v = Gradient(rawValue: value) else { throw bad("exact, first-order or bpda") }
                gradient = v
            case "sigma":
                let r = value.split(separator: ":").compactMap { Self.number(String($0)) }
                guard r.count == 2, r[0] > 0, r[0] <= r[1] else { throw bad("LO:HI with 0 < LO <= HI") }
                sigmaRange = r[0]...r[1]
            case "t":
                let r = value.split(separator: ":").compactMap { Int($0) }
                guard r.count == 2, r[0] >= 0, r[0] < r[1] else { throw bad("A:B with 0 <= A < B") }
                timestepRange = r[0]..<r[1]
            default:
                throw ClassifierError(.lm, "unknown key '\(key)' (steps, eta, variant, norm, step, lr, sigma, t, grad)")
            }
        }
    }

    /// "0.5", "8/255".
    static func number(_ s: String) -> Double? {
        let p = s.split(separator: "/", omittingEmptySubsequences: false)
        if p.count == 2, let a = Double(p[0]), let b = Double(p[1]), b != 0 { return a / b }
        guard p.count == 1, let v = Double(s), v.isFinite else { return nil }
        return v
    }

    public var description: String {
        var s = "variant=\(variant.rawValue),steps=\(steps),eta=\(eta),norm=\(norm.rawValue),grad=\(gradient.rawValue)"
        switch variant {
        case .paper: s += ",step=\(alpha)"
        case .code: s += ",lr=\(learningRate)"
        }
        if let r = timestepRange { s += ",t=\(r.lowerBound):\(r.upperBound)" } else { s += ",sigma=\(sigmaRange.lowerBound):\(sigmaRange.upperBound)" }
        return s
    }

    /// The timestep whose sqrt((1 - abar) / abar) is nearest `sigma`.
    public static func timestep(sigma: Double, schedule: NoiseSchedule) -> Int {
        var best = 0, bestGap = Double.infinity
        for (t, a) in schedule.alphasCumprod.enumerated() {
            let gap = Swift.abs(((1 - a) / a).squareRoot() - sigma)
            if gap < bestGap { best = t; bestGap = gap }
        }
        return best
    }

    /// The (timestep, sigma, eps) of image n at step i: sigma as drawn (nil with `t=A:B`), the
    /// timestep drawn from `t=A:B` or the one nearest sigma.
    func draw(image n: Int, step i: Int, shape: [Int], schedule: NoiseSchedule, randomness: UInt64) -> (Int, Float?, Tensor) {
        var g = RandomGenerator(seed: randomness).derived(UInt64(n)).derived(UInt64(i))
        var ge = g.derived(1)
        let t: Int
        var sigma: Float? = nil
        if let r = timestepRange {
            precondition(r.upperBound <= schedule.numTrainTimesteps, "LikelihoodMaximization: t range \(r) outside 0..<\(schedule.numTrainTimesteps)")
            t = r.lowerBound + g.nextInt(upperBound: r.count)
        } else {
            let s = g.nextFloat(low: Float(sigmaRange.lowerBound), high: Float(sigmaRange.upperBound))
            sigma = s
            t = Self.timestep(sigma: Double(s), schedule: schedule)
        }
        return (t, sigma, Tensor.randn(shape, generator: &ge))
    }

    /// RDC's unconditional loss in sigma-space, `sum_n mean_CHW (D(x0 + sigma_n eps_n; sigma_n, null) - x0)^2`
    /// with x0 = encode(x), for a network that takes any noise level.
    public static func unconditionalLoss(_ x: Tensor, denoiser: NoiseLevelDenoiser, unconditional: Int, sigmas: [Float],
                                         noise eps: Tensor, encoder: SampleEncoder = PixelSpace()) -> Tensor {
        let x0 = encoder.encode(pixels: x)
        let noisy = x0 + eps * Tensor(shape: [sigmas.count, 1, 1, 1], sigmas)
        let labels = Tensor(shape: [sigmas.count], repeating: Float(unconditional))
        return (denoiser.denoise(noisy, sigmas: sigmas, conditions: labels) - x0).square().mean(axes: [1, 2, 3]).sum()
    }

    /// The unconditional loss l(x) above at the given per-image timesteps and noise.
    public static func unconditionalLoss(_ x: Tensor, model: ConditionalNoisePredictor, schedule: NoiseSchedule,
                                         unconditional: Int, timesteps ts: [Int], noise eps: Tensor,
                                         encoder: SampleEncoder = PixelSpace()) -> Tensor {
        let xt = schedule.addNoise(encoder.encode(pixels: x), noise: eps, timesteps: ts)
        let labels = Tensor(shape: [ts.count], repeating: Float(unconditional))
        let out = model.predict(xt, timesteps: ts.map(Float.init), conditions: labels)
        let epsHat = schedule.epsilon(fromOutput: out, sample: xt, timesteps: ts)
        return (epsHat - eps).square().mean(axes: [1, 2, 3]).sum()
    }

    /// LM(x) for x [N, C, H, W] in [0, 1]; recorded according to `gradient`. A `Module` model's
    /// parameters are frozen (`requiresGrad = false`), as in `DiffusionLogits`.
    /// Cost: `steps` forward and backward passes of the U-Net over the N images.
    /// With `denoiser` (the same network taking any noise level) and no `t=A:B`, LM runs in
    /// sigma-space (see above).
    public func run(_ x: Tensor, model: ConditionalNoisePredictor, schedule: NoiseSchedule, unconditional: Int,
                    randomness: UInt64, encoder: SampleEncoder = PixelSpace(), denoiser: NoiseLevelDenoiser? = nil) -> Tensor {
        freezeParameters(model)
        switch gradient {
        case .exact, .firstOrder:
            return unrolled(x, model: model, schedule: schedule, unconditional: unconditional, randomness: randomness, encoder: encoder,
                            denoiser: denoiser)
        case .bpda:
            let shift = Autograd.noGrad {
                unrolled(x.detached(), model: model, schedule: schedule, unconditional: unconditional, randomness: randomness,
                         encoder: encoder, denoiser: denoiser) - x.detached()
            }
            return x + shift
        }
    }

    /// Whether the inner gradients must be recorded: exact gradients asked for, a result that will
    /// be differentiated, and an update whose derivative involves the gradient's (not sign steps).
    func recordsInnerGradients(_ x: Tensor) -> Bool {
        gradient == .exact && Autograd.isEnabled && x.requiresGrad && !(variant == .paper && norm == .linf)
    }

    func unrolled(_ x: Tensor, model: ConditionalNoisePredictor, schedule: NoiseSchedule, unconditional: Int,
                  randomness: UInt64, encoder: SampleEncoder, denoiser: NoiseLevelDenoiser?) -> Tensor {
        precondition(x.rank == 4, "LikelihoodMaximization: x must be [N, C, H, W], got \(x.shape)")
        let N = x.shape[0]
        var rowShape = encoder.sampleShape(pixels: x.shape)
        rowShape[0] = 1
        var xp = x
        let secondOrder = recordsInnerGradients(x)
        var m = Tensor.zeros(x.shape), v = Tensor.zeros(x.shape)
        let (b1, b2): (Float, Float) = (0.9, 0.999)
        for i in 0..<steps {
            let draws = (0..<N).map { draw(image: $0, step: i, shape: rowShape, schedule: schedule, randomness: randomness) }
            let eps = Tensor.concat(draws.map(\.2), axis: 0)
            let ts = draws.map(\.0)
            let sigmas = draws.compactMap(\.1)
            // The unconditional loss at x': in sigma-space with a noise-level denoiser, else at the timesteps.
            let loss: (Tensor) -> Tensor = { y in
                if let denoiser, sigmas.count == N {
                    return Self.unconditionalLoss(y, denoiser: denoiser, unconditional: unconditional, sigmas: sigmas, noise: eps,
                                                  encoder: encoder)
                }
                return Self.unconditionalLoss(y, model: model, schedule: schedule, unconditional: unconditional, timesteps: ts, noise: eps,
                                              encoder: encoder)
            }
            let g: Tensor
            if secondOrder {
                // g = d l / d x' recorded (create graph): a function of x' and so of x.
                let l = loss(xp)
                do {
                    g = try TensorEngine.gradient(of: l, wrt: [xp], createGraph: true)[0]
                } catch {
                    preconditionFailure("LikelihoodMaximization grad=exact: \(error) (use grad=first-order or grad=bpda for this model)")
                }
            } else {
                // g = d l / d x' at the current iterate, a constant.
                g = valueAndGradient(at: [xp]) { loss($0[0]) }.gradients[0]
            }
            let step: () -> Tensor = {
                switch variant {
                case .paper:
                    switch norm {
                    case .linf: return g.sign() * Float(alpha)
                    case .l2: return g / (g.square().sum(axes: [1, 2, 3], keepDims: true).sqrt() + 1e-12) * Float(alpha)
                    }
                case .code:
                    // Adam on x0 = 2x - 1: its gradient is g / 2, its step lr moves x by lr / 2.
                    let g0 = g * 0.5
                    m = m * b1 + g0 * (1 - b1)
                    v = v * b2 + g0.square() * (1 - b2)
                    let c1 = 1 - Foundation.pow(b1, Float(i + 1)), c2 = 1 - Foundation.pow(b2, Float(i + 1))
                    return (m / c1) / ((v / c2).sqrt() + 1e-8) * Float(learningRate / 2)
                }
            }
            // Recorded only when the inner gradient is (otherwise it is a constant of the update).
            let update = secondOrder ? step() : Autograd.noGrad { step() }
            xp = project(xp - update, around: x)
        }
        return xp
    }

    /// Projection onto the ball of radius eta around `x`, then onto [0, 1] (recorded in both).
    public func project(_ xp: Tensor, around x: Tensor) -> Tensor {
        let e = Float(eta)
        switch norm {
        case .linf:
            return xp.maximum(x - e).minimum(x + e).clamp(min: 0, max: 1)
        case .l2:
            let d = xp - x
            let length = (d.square().sum(axes: [1, 2, 3], keepDims: true) + 1e-24).sqrt()
            let factor = (e / length).minimum(Tensor(1))
            return (x + d * factor).clamp(min: 0, max: 1)
        }
    }
}
