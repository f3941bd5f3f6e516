import Foundation

/// The engine's run-time self-check (`diffclass selfcheck`, part of `make demo`): fast kernels
/// against their plain references, gradients against finite differences, and results across
/// thread counts, on this machine's BLAS and CPU. A smaller sibling of the test suite that a user
/// can run on an installed binary.
public enum SelfCheck {
    public struct Outcome {
        public let name: String
        public let passed: Bool
        public let detail: String
    }

    public struct Report {
        public let outcomes: [Outcome]
        public var passed: Bool { outcomes.allSatisfy(\.passed) }
        public var text: String {
            outcomes.map { "\($0.passed ? "ok  " : "FAIL") \($0.name): \($0.detail)" }.joined(separator: "\n")
                + "\n\(outcomes.filter(\.passed).count) passed, \(outcomes.filter { !$0.passed }.count) failed"
        }
    }

    /// Deterministic values in [-1, 1) for check inputs.
    static func values(_ shape: [Int], seed: UInt64) -> Tensor {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        let t = Tensor.uninitialized(shape)
        for i in 0..<t.count {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            t.pointer[i] = Float(Int64(bitPattern: s) >> 40) / Float(1 << 23)
        }
        return t
    }

    /// Largest |a - b| / (1 + |b|).
    static func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.shape == b.shape, "SelfCheck: shapes \(a.shape) and \(b.shape)")
        var worst: Float = 0
        for i in 0..<a.count {
            let e = Swift.abs(a.pointer[i] - b.pointer[i]) / (1 + Swift.abs(b.pointer[i]))
            if !(e <= worst) { worst = e.isNaN ? .infinity : e }
        }
        return worst
    }

    static func compare(_ name: String, _ fast: Tensor, _ reference: Tensor, tolerance: Float) -> Outcome {
        let e = maxRelativeError(fast, reference)
        return Outcome(name: name, passed: e <= tolerance, detail: String(format: "max rel. error %.2e (limit %.0e)", e, tolerance))
    }

    /// Central-difference check of d sum(f(x) * w) / dx on a few coordinates.
    static func gradientCheck(_ name: String, input: Tensor, _ f: (Tensor) -> Tensor) -> Outcome {
        let w = Autograd.noGrad { values(f(input).shape, seed: 99) }
        let (_, grads) = valueAndGradient(at: [input]) { (f($0[0]) * w).sum() }
        func loss(_ x: Tensor) -> Double {
            let y = Autograd.noGrad { f(x) }
            var acc = 0.0
            for i in 0..<y.count { acc += Double(y.pointer[i]) * Double(w.pointer[i]) }
            return acc
        }
        var worst: Float = 0
        let delta: Float = 1e-2
        for i in stride(from: 0, to: input.count, by: Swift.max(1, input.count / 16)) {
            let plus = input.copy(), minus = input.copy()
            plus.pointer[i] += delta; minus.pointer[i] -= delta
            let numeric = Float((loss(plus) - loss(minus)) / (2 * Double(delta)))
            let e = Swift.abs(numeric - grads[0].pointer[i]) / (1 + Swift.abs(numeric))
            worst = Swift.max(worst, e)
        }
        return Outcome(name: name, passed: worst <= 1e-2, detail: String(format: "max rel. error %.2e vs finite differences", worst))
    }

    public static func run() -> Report {
        var outcomes: [Outcome] = []
        let a = values([3, 67, 131], seed: 1), b = values([131, 45], seed: 2)
        outcomes.append(compare("matmul (BLAS) vs reference", a.matmul(b), Reference.matmul(a, b), tolerance: 1e-5))
        let w = values([8, 12], seed: 3), bias = values([8], seed: 4)
        outcomes.append(gradientCheck("linear+GELU+tanh gradient", input: values([5, 12], seed: 5)) {
            $0.linear(weight: w, bias: bias).gelu().tanh()
        })
        outcomes.append(gradientCheck("broadcast/reduce gradient", input: values([4, 6, 5], seed: 6)) {
            ($0 * $0.mean(axes: [1], keepDims: true)).logSumExp(axes: [2])
        })
        let x = values([2, 8, 9, 7], seed: 10), cw = values([6, 8, 3, 3], seed: 11), cb = values([6], seed: 12)
        let geometry = Conv2dGeometry(input: x.shape, weight: cw.shape, stride: (1, 1), padding: (1, 1), groups: 1)
        let convRef = Reference.conv2d(x, cw, bias: cb, geometry)
        outcomes.append(compare("conv2d Winograd vs reference", x.conv2d(weight: cw, bias: cb, stride: 1, padding: 1, algorithm: .winograd),
                                convRef, tolerance: 1e-4))
        outcomes.append(compare("conv2d im2col vs reference", x.conv2d(weight: cw, bias: cb, stride: 1, padding: 1, algorithm: .im2col),
                                convRef, tolerance: 1e-5))
        outcomes.append(gradientCheck("conv2d gradient", input: values([1, 3, 5, 6], seed: 13)) {
            $0.conv2d(weight: values([4, 3, 3, 3], seed: 14), stride: 2, padding: 1)
        })
        let gw = values([8], seed: 15), gb = values([8], seed: 16)
        outcomes.append(compare("group norm + SiLU vs reference", x.groupNormSiLU(groups: 4, weight: gw, bias: gb),
                                Reference.groupNormSiLU(x, groups: 4, weight: gw, bias: gb), tolerance: 1e-5))
        let q = values([2, 3, 70, 16], seed: 17), k = values([2, 3, 70, 16], seed: 18), v = values([2, 3, 70, 16], seed: 19)
        outcomes.append(compare("attention vs reference", Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true),
                                Reference.scaledDotProductAttention(query: q, key: k, value: v, causal: true), tolerance: 1e-5))
        // Random123's known answer for Philox 4x32-10 with counter 0 and key 0.
        let kat = Philox4x32(key: SIMD2(0, 0)).block(counter: SIMD4(0, 0, 0, 0))
        let katOK = kat == SIMD4<UInt32>(0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)
        outcomes.append(Outcome(name: "Philox 4x32-10 known answer", passed: katOK, detail: katOK ? "matches Random123" : "got \(kat)"))
        // Same numbers whatever the thread count.
        let saved = Engine.threads
        let wide = values([4, 50_000], seed: 7), y = values([50_000], seed: 8)
        func probe() -> [Float] { ((wide * y).silu().sum(axes: [1]) + wide.matmul(wide.transposed()).sum()).scalars }
        Engine.threads = 1
        let one = probe()
        Engine.threads = Swift.max(2, saved)
        let many = probe()
        Engine.threads = saved
        outcomes.append(Outcome(name: "identical results for 1 and \(Swift.max(2, saved)) threads", passed: one == many,
                                detail: one == many ? "bitwise equal" : "results differ"))
        return Report(outcomes: outcomes)
    }
}
