import Foundation
import XCTest
import TensorEngine

/// SplitMix64: a tiny deterministic generator for test inputs (independent of the engine's RNG,
/// so tests of the engine's RNG do not depend on it).
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box-Muller).
    mutating func normal() -> Float {
        let u1 = Swift.max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A tensor of standard-normal test values (scaled, shifted), deterministic in `seed`.
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, shift: Float = 0,
                  requiresGrad: Bool = false) -> Tensor {
    var rng = TestRandom(seed)
    let n = Tensor.elementCount(shape)
    return Tensor(shape: shape, (0..<n).map { _ in rng.normal() * scale + shift }, requiresGrad: requiresGrad)
}

/// Asserts |a - b| <= atol + rtol * |b| elementwise, and equal shapes.
func assertClose(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "shape \(message)", file: file, line: line)
    guard a.shape == b.shape else { return }
    let x = a.scalars, y = b.scalars
    var worst = 0, worstExcess: Float = 0
    for i in 0..<x.count {
        let excess = Swift.abs(x[i] - y[i]) - (atol + rtol * Swift.abs(y[i]))
        if !(excess <= 0) && (excess > worstExcess || excess.isNaN) { worst = i; worstExcess = excess.isNaN ? .infinity : excess }
    }
    XCTAssert(worstExcess == 0, "\(message): element \(worst) differs: \(x[worst]) vs \(y[worst]) (rtol \(rtol), atol \(atol))",
              file: file, line: line)
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// The checked scalar is L = sum(f(x) * R) with a fixed random R (so every output element
/// matters), summed in Float64. Each input element is perturbed by +-`delta`; the analytic
/// gradient must satisfy |analytic - numeric| <= atol + rtol * max|numeric| elementwise.
func checkGradients(_ inputs: [Tensor], delta: Float = 1e-2, rtol: Float = 1e-2, atol: Float = 1e-3,
                    file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) -> Tensor) {
    let probe = Autograd.noGrad { f(inputs) }
    let weights = randomTensor(probe.shape, seed: 0xC0FFEE)
    func loss(_ xs: [Tensor]) -> Double {
        let out = Autograd.noGrad { f(xs) }
        let w = weights.scalars
        var acc = 0.0
        for (i, v) in out.scalars.enumerated() { acc += Double(v) * Double(w[i]) }
        return acc
    }
    let (_, analytic) = valueAndGradient(at: inputs) { xs in (f(xs) * weights).sum() }
    for (k, x) in inputs.enumerated() {
        var numeric = [Float](repeating: 0, count: x.count)
        let base = x.scalars
        for i in 0..<x.count {
            var plus = base, minus = base
            plus[i] += delta; minus[i] -= delta
            var xsPlus = inputs, xsMinus = inputs
            xsPlus[k] = Tensor(shape: x.shape, plus)
            xsMinus[k] = Tensor(shape: x.shape, minus)
            numeric[i] = Float((loss(xsPlus) - loss(xsMinus)) / (2 * Double(delta)))
        }
        let scale = numeric.map { Swift.abs($0) }.max() ?? 0
        let a = analytic[k].scalars
        for i in 0..<x.count {
            let err = Swift.abs(a[i] - numeric[i])
            if !(err <= atol + rtol * Swift.max(scale, Swift.abs(numeric[i]))) {
                XCTFail("gradient of input \(k) element \(i): analytic \(a[i]), numeric \(numeric[i]) (shape \(x.shape))",
                        file: file, line: line)
                return
            }
        }
    }
}
