import XCTest
import TensorEngine

/// Runs `body` with `Engine.threads` 1 and then 2 (restoring the setting) and asserts that every
/// returned tensor is bit-for-bit the same.
func assertSameForThreadCounts(_ message: String = "", file: StaticString = #filePath, line: UInt = #line,
                               _ body: () -> [Tensor]) {
    let saved = Engine.threads
    defer { Engine.threads = saved }
    Engine.threads = 1
    let one = body()
    Engine.threads = 2
    let two = body()
    XCTAssertEqual(one.count, two.count, message, file: file, line: line)
    for (k, (a, b)) in zip(one, two).enumerated() {
        XCTAssertEqual(a.shape, b.shape, "\(message) result \(k)", file: file, line: line)
        XCTAssert(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern),
                  "\(message) result \(k) differs between 1 and 2 threads", file: file, line: line)
    }
}

/// The value of `f` and its gradients with respect to all `inputs` (for the loss sum(f * R) with a
/// fixed random R), so fast and reference backward passes can be compared.
func valueAndGradients(_ inputs: [Tensor], seed: UInt64 = 99, _ f: ([Tensor]) -> Tensor) -> [Tensor] {
    let probe = Autograd.noGrad { f(inputs) }
    let weights = randomTensor(probe.shape, seed: seed)
    let (_, grads) = valueAndGradient(at: inputs) { xs in (f(xs) * weights).sum() }
    return [probe] + grads
}

/// Asserts fast and reference agree in value and in every gradient.
func assertSameValueAndGradients(_ inputs: [Tensor], rtol: Float = 1e-4, atol: Float = 1e-5, _ message: String = "",
                                 file: StaticString = #filePath, line: UInt = #line,
                                 fast: ([Tensor]) -> Tensor, reference: ([Tensor]) -> Tensor) {
    let a = valueAndGradients(inputs, fast), b = valueAndGradients(inputs, reference)
    for (k, (x, y)) in zip(a, b).enumerated() {
        assertClose(x, y, rtol: rtol, atol: atol, "\(message) \(k == 0 ? "value" : "gradient of input \(k - 1)")",
                    file: file, line: line)
    }
}
