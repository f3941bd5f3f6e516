import Foundation

// Elementwise arithmetic with broadcasting, and unary math, each with its gradient. The values
// come from the current backend (`Engine.backend`: `UnaryOp`, `BinaryOp`); this file holds the
// shape rules and the gradients.

extension Tensor {
    /// op(self) through the backend, recorded with the op's gradient kernel (`unaryGradient`).
    private func mapped(_ op: UnaryOp, _ name: String) -> Tensor {
        let x = self
        let y = Engine.backend.unary(op, x)
        if op.gradientUsesOutput {
            return y.recorded(name, [x], backward: { [unowned y] g in [Engine.backend.unaryGradient(op, gradient: g, operand: y)] },
                              differentiableBackward: { [unowned y] g in [Tensor.unaryGradientOp(op, g, operand: y)] })
        }
        return y.recorded(name, [x], backward: { g in [Engine.backend.unaryGradient(op, gradient: g, operand: x)] },
                          differentiableBackward: { g in [Tensor.unaryGradientOp(op, g, operand: x)] })
    }

    /// op(a, b) with broadcasting through the backend (no history).
    static func elementwise(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, name: String) -> Tensor {
        if a.shape != b.shape { _ = broadcastShape(a.shape, b.shape, op: name) }
        return Engine.backend.binary(op, a, b)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        elementwise(.add, a, b, name: "add").recordedComposed("add", [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? g.sumToShape(b.shape) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        elementwise(.subtract, a, b, name: "sub").recordedComposed("sub", [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? (-g).sumToShape(b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        elementwise(.multiply, a, b, name: "mul").recordedComposed("mul", [a, b]) { g in
            [a.requiresGrad ? (g * b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * a).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        elementwise(.divide, a, b, name: "div").recordedComposed("div", [a, b]) { g in
            [a.requiresGrad ? (g / b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (-(g * a) / (b * b)).sumToShape(b.shape) : nil]
        }
    }

    public static prefix func - (a: Tensor) -> Tensor {
        Engine.backend.unary(.negate, a).recordedComposed("neg", [a]) { g in [-g] }
    }

    // Scalar forms. `a / s` multiplies by 1 / s (one rounding more than dividing; divide by a
    // 0-d tensor, `a / Tensor(s)`, for the exact quotient).
    public static func + (a: Tensor, s: Float) -> Tensor {
        Engine.backend.unary(.addScalar(s), a).recordedComposed("add_scalar", [a]) { g in [g] }
    }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func - (s: Float, a: Tensor) -> Tensor {
        Engine.backend.unary(.subtractFromScalar(s), a).recordedComposed("rsub_scalar", [a]) { g in [-g] }
    }
    public static func * (a: Tensor, s: Float) -> Tensor {
        Engine.backend.unary(.multiplyScalar(s), a).recordedComposed("mul_scalar", [a]) { g in [g * s] }
    }
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    public static func / (s: Float, a: Tensor) -> Tensor { a.mapped(.divideScalar(s), "rdiv_scalar") }

    /// Elementwise power with a tensor exponent (broadcast); the base must be positive where the
    /// exponent's gradient is needed.
    public func pow(_ exponent: Tensor) -> Tensor {
        let a = self, b = exponent
        let out = Tensor.elementwise(.pow, a, b, name: "pow")
        return out.recordedComposed("pow", [a, b]) { [unowned out] g in
            [a.requiresGrad ? (g * b * a.pow(b - 1)).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * out * a.log()).sumToShape(b.shape) : nil]
        }
    }

    /// Elementwise power with a scalar exponent.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return square() }
        return mapped(.powScalar(p), "pow_scalar")
    }

    public func square() -> Tensor { mapped(.square, "square") }

    /// Elementwise minimum (broadcast); on ties each side gets half the gradient, as in PyTorch.
    public func minimum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        return Tensor.elementwise(.minimum, a, b, name: "minimum").recordedComposed("minimum", [a, b]) { g in
            let wa = Tensor.elementwise(.minimumWeight, a, b, name: "minimum")
            return [a.requiresGrad ? (g * wa).sumToShape(a.shape) : nil,
                    b.requiresGrad ? (g * (1 - wa)).sumToShape(b.shape) : nil]
        }
    }

    /// Elementwise maximum (broadcast); on ties each side gets half the gradient, as in PyTorch.
    public func maximum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        return Tensor.elementwise(.maximum, a, b, name: "maximum").recordedComposed("maximum", [a, b]) { g in
            let wa = Tensor.elementwise(.maximumWeight, a, b, name: "maximum")
            return [a.requiresGrad ? (g * wa).sumToShape(a.shape) : nil,
                    b.requiresGrad ? (g * (1 - wa)).sumToShape(b.shape) : nil]
        }
    }

    /// `condition` nonzero picks from `a`, zero from `b` (values copied exactly); all three
    /// broadcast together.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        _ = broadcastShape(condition.shape, broadcastShape(a.shape, b.shape, op: "where"), op: "where")
        let out = Engine.backend.select(condition, a, b)
        return out.recordedComposed("where", [a, b]) { g in
            let mask = Engine.backend.unary(.nonzero, condition)
            return [a.requiresGrad ? (g * mask).sumToShape(a.shape) : nil,
                    b.requiresGrad ? (g * (1 - mask)).sumToShape(b.shape) : nil]
        }
    }

    // Comparisons give 0/1 tensors and carry no gradient.
    public func greater(_ o: Tensor) -> Tensor { Tensor.elementwise(.greater, self, o, name: "greater") }
    public func less(_ o: Tensor) -> Tensor { Tensor.elementwise(.less, self, o, name: "less") }
    public func equal(_ o: Tensor) -> Tensor { Tensor.elementwise(.equal, self, o, name: "equal") }
    public func greater(_ s: Float) -> Tensor { Engine.backend.unary(.greaterThan(s), self) }
    public func less(_ s: Float) -> Tensor { Engine.backend.unary(.lessThan(s), self) }

    public func exp() -> Tensor { mapped(.exp, "exp") }
    public func log() -> Tensor { mapped(.log, "log") }
    public func sqrt() -> Tensor { mapped(.sqrt, "sqrt") }
    public func rsqrt() -> Tensor { mapped(.rsqrt, "rsqrt") }
    public func abs() -> Tensor { mapped(.abs, "abs") }
    /// Sine (libm's `sinf` on the CPU backend).
    public func sin() -> Tensor { mapped(.sin, "sin") }
    /// Cosine (libm's `cosf` on the CPU backend).
    public func cos() -> Tensor { mapped(.cos, "cos") }

    /// -1, 0 or 1; its gradient is zero.
    public func sign() -> Tensor {
        Engine.backend.unary(.sign, self).recordedComposed("sign", [self]) { g in [Tensor.zeros(g.shape)] }
    }

    /// Clamps to [lower, upper] (either may be nil); the gradient passes where the input is inside.
    public func clamp(min lower: Float? = nil, max upper: Float? = nil) -> Tensor {
        let lo = lower ?? -Float.infinity, hi = upper ?? Float.infinity
        precondition(lo <= hi, "clamp: min \(lo) is above max \(hi)")
        return mapped(.clamp(lower: lo, upper: hi), "clamp")
    }

    public func sigmoid() -> Tensor { mapped(.sigmoid, "sigmoid") }
    public func tanh() -> Tensor { mapped(.tanh, "tanh") }

    /// x * sigmoid(x).
    public func silu() -> Tensor { mapped(.silu, "silu") }

    /// GELU, exact form x * Phi(x) (PyTorch's default), or the tanh approximation.
    public func gelu(approximate: Bool = false) -> Tensor {
        approximate ? mapped(.geluTanh, "gelu_tanh") : mapped(.gelu, "gelu")
    }

    /// x * sigmoid(1.702 x), as in OpenAI's CLIP.
    public func quickGelu() -> Tensor { mapped(.quickGelu, "quick_gelu") }

    /// log(1 + e^x).
    public func softplus() -> Tensor { mapped(.softplus, "softplus") }

    public func relu() -> Tensor { mapped(.relu, "relu") }
}
