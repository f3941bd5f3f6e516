// Differentiable backward passes: the gradients of the ops whose ordinary backward is a kernel of
// its own, written as recorded ops, so that a create-graph backward (`backward(createGraph:)`,
// `gradient(of:wrt:createGraph:)`) records them and second derivatives come from autodiff.
//
// The pattern (tinygrad's): a backward kernel that is linear in the output gradient becomes a
// recorded op of its own whose backward is the forward op again (avgPool2d <-> its adjoint,
// conv2d <-> its input and weight gradients, gatherRows <-> scatterAddRows, ...), so every order
// is closed. Elementwise ops record their gradient kernel as an op of (gradient, operand) whose
// derivative in the operand is the op's second derivative, written in recorded ops. The fused
// layers (group norm, layer norm, attention) recompute themselves from recorded primitives and
// differentiate that composition. The ordinary backward passes are untouched: these run only
// when a create-graph pass asks for them.

extension UnaryOp {
    /// d f'(u) / du for the operand u that `unaryGradient` takes (the input, or the output where
    /// `gradientUsesOutput`), times `scale` (same shape as u), as recorded ops; nil where it is
    /// zero almost everywhere (relu, abs, clamp: piecewise linear, their exact second derivative
    /// is 0 away from the kinks).
    func gradientDerivative(_ u: Tensor, times scale: Tensor) -> Tensor? {
        let invSqrt2Pi: Float = 0.39894228040143268
        switch self {
        case .divideScalar(let s): return scale * u.pow(-3) * (2 * s)                 // (s/x)'' = 2s/x^3
        case .powScalar(let p):
            if p == 1 { return nil }
            let power: Tensor = p == 2 ? Tensor.ones(u.shape) : u.pow(p - 2)
            return scale * power * (p * (p - 1))
        case .square: return scale * 2
        case .log: return -(scale / u.square())
        case .exp: return scale                                                       // f' = y
        case .sqrt: return -(scale / u.square()) * 0.5                                // f' = 0.5 / y
        case .rsqrt: return scale * u.square() * -1.5                                 // f' = -0.5 y^3
        case .sigmoid: return scale * (1 - u * 2)                                     // f' = y (1 - y)
        case .tanh: return scale * u * -2                                             // f' = 1 - y^2
        case .sin: return -(scale * u.sin())
        case .cos: return -(scale * u.cos())
        case .abs, .clamp, .relu: return nil
        case .silu:
            // f' = s (1 + x (1 - s)), f'' = s (1 - s) (2 + x (1 - 2 s)).
            let s = u.sigmoid()
            return scale * s * (1 - s) * (u * (1 - s * 2) + 2)
        case .softplus:
            let s = u.sigmoid()
            return scale * s * (1 - s)
        case .gelu:
            // f' = Phi(x) + x phi(x), f'' = phi(x) (2 - x^2).
            let pdf = (u.square() * -0.5).exp() * invSqrt2Pi
            return scale * pdf * (2 - u.square())
        case .geluTanh:
            // f = x (1 + tanh v) / 2 with v = c (x + k x^3):
            // f'' = (1 - t^2) (v' - x t v'^2 + x v'' / 2), v' = c (1 + 3k x^2), v'' = 6 c k x.
            let c: Float = 0.79788456080286536, k: Float = 0.044715
            let t = ((u + u.pow(3) * k) * c).tanh()
            let dv = (u.square() * (3 * k) + 1) * c
            let sech2 = 1 - t.square()
            return scale * sech2 * (dv - u * t * dv.square() + u.square() * (3 * c * k))
        case .quickGelu:
            // f = x s(a x): f'' = a s (1 - s) (2 + a x (1 - 2 s)).
            let a: Float = 1.702
            let s = (u * a).sigmoid()
            return scale * s * (1 - s) * ((u * a) * (1 - s * 2) + 2) * a
        case .negate, .addScalar, .multiplyScalar, .subtractFromScalar, .sign, .greaterThan, .lessThan, .nonzero:
            preconditionFailure("gradientDerivative: \(self) has no gradient kernel")
        }
    }
}

extension Tensor {
    /// `unaryGradient(op, g, operand)` (= g f'(u)) as a recorded op of g and the operand.
    static func unaryGradientOp(_ op: UnaryOp, _ g: Tensor, operand u: Tensor) -> Tensor {
        let out = Engine.backend.unaryGradient(op, gradient: g, operand: u)
        return out.recordedComposed("unary_gradient", [g, u]) { h in
            [g.requiresGrad ? unaryGradientOp(op, h, operand: u) : nil,
             u.requiresGrad ? op.gradientDerivative(u, times: h * g) : nil]
        }
    }

    /// op(a) op(b) over the last two dimensions, batch dimensions broadcast, recorded.
    static func product(_ a: Tensor, _ b: Tensor, transA: Bool, transB: Bool) -> Tensor {
        let out = batchedProduct(a, b, transA: transA, transB: transB)
        return out.recordedComposed("matmul", [a, b]) { g in
            [a.requiresGrad ? (transA ? product(b, g, transA: transB, transB: true) : product(g, b, transA: false, transB: !transB))
                .sumToShape(a.shape) : nil,
             b.requiresGrad ? (transB ? product(g, a, transA: true, transB: transA) : product(a, g, transA: !transA, transB: false))
                .sumToShape(b.shape) : nil]
        }
    }

    /// The adjoint of `gatherRows`, recorded (its own gradient is `gatherRows`).
    func scatterAddingRows(_ rows: [Int], count n: Int) -> Tensor {
        let g = self
        return Engine.backend.scatterAddRows(g, rows, count: n).recordedComposed("scatter_add_rows", [g]) { h in
            [h.gatherRows(rows)]
        }
    }

    /// The input gradient of conv2d for output gradient `g` (self) and `weight`, recorded: linear in
    /// each, so its gradients are conv2d again and the weight gradient.
    func conv2dInputGradient(weight: Tensor, input: Tensor, geometry geo: Conv2dGeometry, algorithm: Conv2dAlgorithm) -> Tensor {
        let g = self
        let backend = Engine.backend
        let out = backend.conv2dBackward(gradient: g, input: input, weight: weight, geometry: geo, algorithm: algorithm,
                                         needInput: true, needWeight: false).input!
        return out.recordedComposed("conv2d_input_gradient", [g, weight]) { h in
            [g.requiresGrad ? h.conv2d(weight: weight, stride: (geo.sh, geo.sw), padding: (geo.ph, geo.pw), groups: geo.groups,
                                       algorithm: algorithm) : nil,
             weight.requiresGrad ? g.conv2dWeightGradient(input: h, weight: weight, geometry: geo, algorithm: algorithm) : nil]
        }
    }

    /// The weight gradient of conv2d for output gradient `g` (self) and `input`, recorded.
    func conv2dWeightGradient(input: Tensor, weight: Tensor, geometry geo: Conv2dGeometry, algorithm: Conv2dAlgorithm) -> Tensor {
        let g = self
        let backend = Engine.backend
        let out = backend.conv2dBackward(gradient: g, input: input, weight: weight, geometry: geo, algorithm: algorithm,
                                         needInput: false, needWeight: true).weight!
        return out.recordedComposed("conv2d_weight_gradient", [g, input]) { k in
            [g.requiresGrad ? input.conv2d(weight: k, stride: (geo.sh, geo.sw), padding: (geo.ph, geo.pw), groups: geo.groups,
                                           algorithm: algorithm) : nil,
             input.requiresGrad ? g.conv2dInputGradient(weight: k, input: input, geometry: geo, algorithm: algorithm) : nil]
        }
    }

    /// The gradient of `avgPool2d` (self is the output gradient), recorded; its gradient is avgPool2d.
    func avgPool2dGradient(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        let g = self
        return Engine.backend.avgPool2dBackward(gradient: g, inputShape: inputShape, kernel: kernel, stride: stride)
            .recordedComposed("avg_pool2d_gradient", [g]) { h in [h.avgPool2d(kernel: kernel, stride: stride)] }
    }

    /// The gradient of `upsampleNearest` (block sums), recorded; its gradient is upsampleNearest.
    func upsampleNearestGradient(scale: (Int, Int)) -> Tensor {
        let g = self
        return Engine.backend.upsampleNearestBackward(gradient: g, scale: scale)
            .recordedComposed("upsample_nearest_gradient", [g]) { h in [h.upsampleNearest(scale: scale)] }
    }

    /// `depthwiseCorrelate` into `outputSize`, recorded; its gradient is `depthwiseScattered`.
    func depthwiseCorrelated(filter: Tensor, stride s: Int, padding p: Int, outputSize: (Int, Int)) -> Tensor {
        let x = self
        let inputSize = (x.shape[2], x.shape[3])
        return Engine.backend.depthwiseCorrelate(x, filter: filter, stride: s, padding: p, outputSize: outputSize)
            .recordedComposed("depthwise_conv2d", [x]) { g in
                [g.depthwiseScattered(filter: filter, stride: s, padding: p, outputSize: inputSize)]
            }
    }

    /// `depthwiseScatter` into `outputSize`, recorded; its gradient is `depthwiseCorrelated`.
    func depthwiseScattered(filter: Tensor, stride s: Int, padding p: Int, outputSize: (Int, Int)) -> Tensor {
        let x = self
        let inputSize = (x.shape[2], x.shape[3])
        return Engine.backend.depthwiseScatter(x, filter: filter, stride: s, padding: p, outputSize: outputSize)
            .recordedComposed("depthwise_conv_transpose2d", [x]) { g in
                [g.depthwiseCorrelated(filter: filter, stride: s, padding: p, outputSize: inputSize)]
            }
    }

    /// Inverted dropout of `self` with the mask of `generator` (not advanced), recorded; linear, its
    /// gradient is the same masked op.
    func maskedDropout(generator: RandomGenerator, keep: Float, scale: Float) -> Tensor {
        let x = self
        return Engine.backend.dropout(x, generator: generator, keep: keep, scale: scale)
            .recordedComposed("dropout", [x]) { g in [g.maskedDropout(generator: generator, keep: keep, scale: scale)] }
    }
}
