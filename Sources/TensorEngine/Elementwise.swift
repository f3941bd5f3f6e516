import Foundation

// Elementwise arithmetic with broadcasting, and unary math, each with its gradient.

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        broadcastKernel(a, b, op: "add", AddKernelOp()).recorded("add", [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? g.sumToShape(b.shape) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        broadcastKernel(a, b, op: "sub", SubKernelOp()).recorded("sub", [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? (-g).sumToShape(b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        broadcastKernel(a, b, op: "mul", MulKernelOp()).recorded("mul", [a, b]) { g in
            [a.requiresGrad ? (g * b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * a).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        broadcastKernel(a, b, op: "div", DivKernelOp()).recorded("div", [a, b]) { g in
            [a.requiresGrad ? (g / b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (-(g * a) / (b * b)).sumToShape(b.shape) : nil]
        }
    }

    public static prefix func - (a: Tensor) -> Tensor {
        mapKernel(a) { -$0 }.recorded("neg", [a]) { g in [-g] }
    }

    // Scalar forms.
    public static func + (a: Tensor, s: Float) -> Tensor {
        mapKernel(a) { $0 + s }.recorded("add_scalar", [a]) { g in [g] }
    }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func - (s: Float, a: Tensor) -> Tensor {
        mapKernel(a) { s - $0 }.recorded("rsub_scalar", [a]) { g in [-g] }
    }
    public static func * (a: Tensor, s: Float) -> Tensor {
        mapKernel(a) { $0 * s }.recorded("mul_scalar", [a]) { g in [g * s] }
    }
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    public static func / (s: Float, a: Tensor) -> Tensor {
        mapKernel(a) { s / $0 }.recorded("rdiv_scalar", [a]) { g in
            [zipKernel(g, a) { gv, x in -gv * s / (x * x) }]
        }
    }

    /// Elementwise power with a tensor exponent (broadcast); the base must be positive where the
    /// exponent's gradient is needed.
    public func pow(_ exponent: Tensor) -> Tensor {
        let a = self, b = exponent
        let out = broadcastKernel(a, b, op: "pow") { Foundation.pow($0, $1) }
        return out.recorded("pow", [a, b]) { [unowned out] g in
            [a.requiresGrad ? (g * b * a.pow(b - 1)).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * out * a.log()).sumToShape(b.shape) : nil]
        }
    }

    /// Elementwise power with a scalar exponent.
    public func pow(_ p: Float) -> Tensor {
        let x = self
        if p == 2 { return square() }
        return mapKernel(x) { Foundation.pow($0, p) }.recorded("pow_scalar", [x]) { g in
            [zipKernel(g, x) { gv, xv in gv * p * Foundation.pow(xv, p - 1) }]
        }
    }

    public func square() -> Tensor {
        let x = self
        return mapKernel(x) { $0 * $0 }.recorded("square", [x]) { g in
            [zipKernel(g, x) { gv, xv in 2 * gv * xv }]
        }
    }

    /// Elementwise minimum (broadcast); on ties each side gets half the gradient, as in PyTorch.
    public func minimum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        return broadcastKernel(a, b, op: "minimum") { Swift.min($0, $1) }.recorded("minimum", [a, b]) { g in
            let wa = broadcastKernel(a, b, op: "minimum") { $0 < $1 ? 1 : ($0 == $1 ? 0.5 : 0) }
            return [a.requiresGrad ? (g * wa).sumToShape(a.shape) : nil,
                    b.requiresGrad ? (g * (1 - wa)).sumToShape(b.shape) : nil]
        }
    }

    /// Elementwise maximum (broadcast); on ties each side gets half the gradient, as in PyTorch.
    public func maximum(_ other: Tensor) -> Tensor {
        let a = self, b = other
        return broadcastKernel(a, b, op: "maximum") { Swift.max($0, $1) }.recorded("maximum", [a, b]) { g in
            let wa = broadcastKernel(a, b, op: "maximum") { $0 > $1 ? 1 : ($0 == $1 ? 0.5 : 0) }
            return [a.requiresGrad ? (g * wa).sumToShape(a.shape) : nil,
                    b.requiresGrad ? (g * (1 - wa)).sumToShape(b.shape) : nil]
        }
    }

    /// `condition` nonzero picks from `a`, zero from `b`; all three broadcast together.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let mask = broadcastKernel(condition, Tensor(shape: broadcastShape(a.shape, b.shape, op: "where"), repeating: 0),
                                   op: "where") { c, _ in c != 0 ? 1 : 0 }
        let out = broadcastKernel(broadcastKernel(mask, a, op: "where") { m, x in m != 0 ? x : 0 },
                                  broadcastKernel(mask, b, op: "where") { m, y in m != 0 ? 0 : y },
                                  op: "where") { $0 + $1 }
        return out.recorded("where", [a, b]) { g in
            [a.requiresGrad ? (g * mask).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * (1 - mask)).sumToShape(b.shape) : nil]
        }
    }

    // Comparisons give 0/1 tensors and carry no gradient.
    public func greater(_ o: Tensor) -> Tensor { broadcastKernel(self, o, op: "greater") { $0 > $1 ? 1 : 0 } }
    public func less(_ o: Tensor) -> Tensor { broadcastKernel(self, o, op: "less") { $0 < $1 ? 1 : 0 } }
    public func equal(_ o: Tensor) -> Tensor { broadcastKernel(self, o, op: "equal") { $0 == $1 ? 1 : 0 } }
    public func greater(_ s: Float) -> Tensor { mapKernel(self) { $0 > s ? 1 : 0 } }
    public func less(_ s: Float) -> Tensor { mapKernel(self) { $0 < s ? 1 : 0 } }

    public func exp() -> Tensor {
        let x = self
        let y = mapKernel(x) { Foundation.exp($0) }
        return y.recorded("exp", [x]) { [unowned y] g in [zipKernel(g, y) { $0 * $1 }] }
    }

    public func log() -> Tensor {
        let x = self
        return mapKernel(x) { Foundation.log($0) }.recorded("log", [x]) { g in [zipKernel(g, x) { $0 / $1 }] }
    }

    public func sqrt() -> Tensor {
        let x = self
        let y = mapKernel(x) { Foundation.sqrt($0) }
        return y.recorded("sqrt", [x]) { [unowned y] g in [zipKernel(g, y) { 0.5 * $0 / $1 }] }
    }

    public func rsqrt() -> Tensor {
        let x = self
        let y = mapKernel(x) { 1 / Foundation.sqrt($0) }
        return y.recorded("rsqrt", [x]) { [unowned y] g in [zipKernel(g, y) { gv, yv in -0.5 * gv * yv * yv * yv }] }
    }

    public func abs() -> Tensor {
        let x = self
        return mapKernel(x) { Swift.abs($0) }.recorded("abs", [x]) { g in
            [zipKernel(g, x) { gv, xv in xv > 0 ? gv : (xv < 0 ? -gv : 0) }]
        }
    }

    /// -1, 0 or 1; its gradient is zero.
    public func sign() -> Tensor {
        let x = self
        return mapKernel(x) { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }.recorded("sign", [x]) { g in [Tensor.zeros(g.shape)] }
    }

    /// Clamps to [lower, upper] (either may be nil); the gradient passes where the input is inside.
    public func clamp(min lower: Float? = nil, max upper: Float? = nil) -> Tensor {
        let x = self
        let lo = lower ?? -Float.infinity, hi = upper ?? Float.infinity
        precondition(lo <= hi, "clamp: min \(lo) is above max \(hi)")
        return mapKernel(x) { Swift.min(Swift.max($0, lo), hi) }.recorded("clamp", [x]) { g in
            [zipKernel(g, x) { gv, xv in (xv >= lo && xv <= hi) ? gv : 0 }]
        }
    }

    public func sigmoid() -> Tensor {
        let x = self
        let y = mapKernel(x) { sigmoidScalar($0) }
        return y.recorded("sigmoid", [x]) { [unowned y] g in [zipKernel(g, y) { gv, yv in gv * yv * (1 - yv) }] }
    }

    public func tanh() -> Tensor {
        let x = self
        let y = mapKernel(x) { fastTanh($0) }
        return y.recorded("tanh", [x]) { [unowned y] g in [zipKernel(g, y) { gv, yv in gv * (1 - yv * yv) }] }
    }

    /// x * sigmoid(x).
    public func silu() -> Tensor {
        let x = self
        return mapKernel(x) { $0 * sigmoidScalar($0) }.recorded("silu", [x]) { g in
            [zipKernel(g, x) { gv, xv in
                let s = sigmoidScalar(xv)
                return gv * s * (1 + xv * (1 - s))
            }]
        }
    }

    /// GELU, exact form x * Phi(x) (PyTorch's default), or the tanh approximation.
    public func gelu(approximate: Bool = false) -> Tensor {
        let x = self
        let invSqrt2: Float = 0.70710678118654752
        let invSqrt2Pi: Float = 0.39894228040143268
        let c: Float = 0.79788456080286536 // sqrt(2/pi)
        if !approximate {
            return mapKernel(x) { 0.5 * $0 * (1 + Foundation.erf($0 * invSqrt2)) }.recorded("gelu", [x]) { g in
                [zipKernel(g, x) { gv, xv in
                    let cdf = 0.5 * (1 + Foundation.erf(xv * invSqrt2))
                    let pdf = invSqrt2Pi * Foundation.exp(-0.5 * xv * xv)
                    return gv * (cdf + xv * pdf)
                }]
            }
        }
        return mapKernel(x) { v in 0.5 * v * (1 + fastTanh(c * (v + 0.044715 * v * v * v))) }
            .recorded("gelu_tanh", [x]) { g in
                [zipKernel(g, x) { gv, v in
                    let u = c * (v + 0.044715 * v * v * v)
                    let t = fastTanh(u)
                    let du = c * (1 + 3 * 0.044715 * v * v)
                    return gv * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
                }]
            }
    }

    /// x * sigmoid(1.702 x), as in OpenAI's CLIP.
    public func quickGelu() -> Tensor {
        let x = self
        return mapKernel(x) { $0 * sigmoidScalar(1.702 * $0) }.recorded("quick_gelu", [x]) { g in
            [zipKernel(g, x) { gv, xv in
                let s = sigmoidScalar(1.702 * xv)
                return gv * (s + 1.702 * xv * s * (1 - s))
            }]
        }
    }

    /// log(1 + e^x).
    public func softplus() -> Tensor {
        let x = self
        return mapKernel(x) { softplusScalar($0) }.recorded("softplus", [x]) { g in
            [zipKernel(g, x) { gv, xv in gv * sigmoidScalar(xv) }]
        }
    }

    public func relu() -> Tensor {
        let x = self
        return mapKernel(x) { Swift.max($0, 0) }.recorded("relu", [x]) { g in
            [zipKernel(g, x) { gv, xv in xv > 0 ? gv : 0 }]
        }
    }
}
