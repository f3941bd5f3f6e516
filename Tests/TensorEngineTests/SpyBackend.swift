import Foundation
import TensorEngine

/// A backend that forwards every kernel to `CPUBackend` and counts the calls by kernel name, so
/// tests can see that an op reached the backend (and which backend computed a gradient).
final class SpyBackend: ComputeBackend, @unchecked Sendable {
    let inner = CPUBackend.shared
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    var name: String { "spy" }

    /// Calls so far, by kernel name.
    var calls: [String: Int] { lock.lock(); defer { lock.unlock() }; return counts }
    var totalCalls: Int { calls.values.reduce(0, +) }
    func reset() { lock.lock(); counts = [:]; lock.unlock() }

    private func count(_ kernel: String) { lock.lock(); counts[kernel, default: 0] += 1; lock.unlock() }

    func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor { count("unary"); return inner.unary(op, x) }
    func unaryGradient(_ op: UnaryOp, gradient: Tensor, operand: Tensor) -> Tensor {
        count("unaryGradient"); return inner.unaryGradient(op, gradient: gradient, operand: operand)
    }
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor { count("binary"); return inner.binary(op, a, b) }
    func select(_ c: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor { count("select"); return inner.select(c, a, b) }
    func sum(_ x: Tensor, _ l: ReductionLayout) -> Tensor { count("sum"); return inner.sum(x, l) }
    func extremum(_ x: Tensor, _ l: ReductionLayout, largest: Bool) -> Tensor {
        count("extremum"); return inner.extremum(x, l, largest: largest)
    }
    func argExtremum(_ x: Tensor, _ l: ReductionLayout, largest: Bool) -> Tensor {
        count("argExtremum"); return inner.argExtremum(x, l, largest: largest)
    }
    func sumOfSquares(_ t: [Tensor]) -> Double { count("sumOfSquares"); return inner.sumOfSquares(t) }
    func rowMeanLoss(_ x: Tensor, target: Tensor, _ loss: PointwiseLoss) -> [Double] {
        count("rowMeanLoss"); return inner.rowMeanLoss(x, target: target, loss)
    }
    func permute(_ x: Tensor, _ order: [Int]) -> Tensor { count("permute"); return inner.permute(x, order) }
    func slice(_ x: Tensor, axis: Int, _ r: Range<Int>) -> Tensor { count("slice"); return inner.slice(x, axis: axis, r) }
    func pad(_ x: Tensor, axis: Int, before: Int, after: Int, value: Float) -> Tensor {
        count("pad"); return inner.pad(x, axis: axis, before: before, after: after, value: value)
    }
    func concat(_ t: [Tensor], axis: Int) -> Tensor { count("concat"); return inner.concat(t, axis: axis) }
    func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor { count("broadcast"); return inner.broadcast(x, to: shape) }
    func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor { count("gatherRows"); return inner.gatherRows(x, rows) }
    func scatterAddRows(_ g: Tensor, _ rows: [Int], count n: Int) -> Tensor {
        count("scatterAddRows"); return inner.scatterAddRows(g, rows, count: n)
    }
    func replaceRows(_ x: Tensor, _ rows: [Int], with v: Tensor) -> Tensor {
        count("replaceRows"); return inner.replaceRows(x, rows, with: v)
    }
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        count("matmul"); return inner.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
    }
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        count("linear"); return inner.linear(x, weight: weight, bias: bias)
    }
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: Conv2dGeometry, algorithm: Conv2dAlgorithm) -> Tensor {
        count("conv2d"); return inner.conv2d(x, weight: weight, bias: bias, geometry: geometry, algorithm: algorithm)
    }
    func conv2dBackward(gradient: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                        algorithm: Conv2dAlgorithm, needInput: Bool, needWeight: Bool) -> (input: Tensor?, weight: Tensor?) {
        count("conv2dBackward")
        return inner.conv2dBackward(gradient: gradient, input: input, weight: weight, geometry: geometry, algorithm: algorithm,
                                    needInput: needInput, needWeight: needWeight)
    }
    func conv2dBiasGradient(_ g: Tensor) -> Tensor { count("conv2dBiasGradient"); return inner.conv2dBiasGradient(g) }
    func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        count("avgPool2d"); return inner.avgPool2d(x, kernel: kernel, stride: stride)
    }
    func avgPool2dBackward(gradient: Tensor, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
        count("avgPool2dBackward")
        return inner.avgPool2dBackward(gradient: gradient, inputShape: inputShape, kernel: kernel, stride: stride)
    }
    func upsampleNearest(_ x: Tensor, scale: (Int, Int)) -> Tensor { count("upsampleNearest"); return inner.upsampleNearest(x, scale: scale) }
    func upsampleNearestBackward(gradient: Tensor, scale: (Int, Int)) -> Tensor {
        count("upsampleNearestBackward"); return inner.upsampleNearestBackward(gradient: gradient, scale: scale)
    }
    func depthwiseCorrelate(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        count("depthwiseCorrelate"); return inner.depthwiseCorrelate(x, filter: filter, stride: stride, padding: padding, outputSize: outputSize)
    }
    func depthwiseScatter(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor {
        count("depthwiseScatter"); return inner.depthwiseScatter(x, filter: filter, stride: stride, padding: padding, outputSize: outputSize)
    }
    func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool)
        -> (output: Tensor, saved: AnyObject?) {
        count("groupNorm"); return inner.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
    }
    func groupNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, groups: Int, weight: Tensor?, bias: Tensor?,
                           eps: Float, silu: Bool, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        count("groupNormBackward")
        return inner.groupNormBackward(gradient: gradient, input: input, saved: saved, groups: groups, weight: weight, bias: bias,
                                       eps: eps, silu: silu, needs: needs)
    }
    func layerNorm(_ x: Tensor, normalizedCount: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> (output: Tensor, saved: AnyObject?) {
        count("layerNorm"); return inner.layerNorm(x, normalizedCount: normalizedCount, weight: weight, bias: bias, eps: eps)
    }
    func layerNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, normalizedCount: Int, weight: Tensor?,
                           bias: Tensor?, eps: Float, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?) {
        count("layerNormBackward")
        return inner.layerNormBackward(gradient: gradient, input: input, saved: saved, normalizedCount: normalizedCount,
                                       weight: weight, bias: bias, eps: eps, needs: needs)
    }
    func softmax(_ x: Tensor, _ l: ReductionLayout, log: Bool) -> Tensor { count("softmax"); return inner.softmax(x, l, log: log) }
    func softmaxBackward(gradient: Tensor, output: Tensor, _ l: ReductionLayout, log: Bool) -> Tensor {
        count("softmaxBackward"); return inner.softmaxBackward(gradient: gradient, output: output, l, log: log)
    }
    func attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor?, shape: AttentionShape, scale: Float,
                   causal: Bool, keepForBackward: Bool) -> (output: Tensor, saved: AnyObject?) {
        count("attention")
        return inner.attention(query: query, key: key, value: value, mask: mask, shape: shape, scale: scale, causal: causal,
                               keepForBackward: keepForBackward)
    }
    func attentionBackward(gradient: Tensor, query: Tensor, key: Tensor, value: Tensor, mask: Tensor?, output: Tensor,
                           saved: AnyObject?, shape: AttentionShape, scale: Float, causal: Bool,
                           needs: AttentionGradientNeeds) -> (query: Tensor?, key: Tensor?, value: Tensor?, mask: Tensor?) {
        count("attentionBackward")
        return inner.attentionBackward(gradient: gradient, query: query, key: key, value: value, mask: mask, output: output,
                                       saved: saved, shape: shape, scale: scale, causal: causal, needs: needs)
    }
    func dropout(_ x: Tensor, generator: RandomGenerator, keep: Float, scale: Float) -> Tensor {
        count("dropout"); return inner.dropout(x, generator: generator, keep: keep, scale: scale)
    }
    func randomUniform(_ shape: [Int], low: Float, high: Float, generator: RandomGenerator, layout: RandomLayout) -> Tensor {
        count("randomUniform"); return inner.randomUniform(shape, low: low, high: high, generator: generator, layout: layout)
    }
    func randomNormal(_ shape: [Int], mean: Float, std: Float, generator: RandomGenerator) -> Tensor {
        count("randomNormal"); return inner.randomNormal(shape, mean: mean, std: std, generator: generator)
    }
    func randomIntegers(_ shape: [Int], upperBound: Int, generator: RandomGenerator) -> Tensor {
        count("randomIntegers"); return inner.randomIntegers(shape, upperBound: upperBound, generator: generator)
    }
    func decode(_ bytes: UnsafeRawBufferPointer, format: ScalarFormat, shape: [Int]) -> Tensor {
        count("decode"); return inner.decode(bytes, format: format, shape: shape)
    }
    func expandHalf(_ h: HalfTensor) -> Tensor { count("expandHalf"); return inner.expandHalf(h) }
    func expandHalfRows(_ h: HalfTensor, _ rows: [Int]) -> Tensor { count("expandHalfRows"); return inner.expandHalfRows(h, rows) }
    func roundHalf(_ x: Tensor, into h: HalfTensor) { count("roundHalf"); inner.roundHalf(x, into: h) }
    func copy(_ x: Tensor) -> Tensor { count("copy"); return inner.copy(x) }
    func assign(_ s: Tensor, to d: Tensor) { count("assign"); inner.assign(s, to: d) }
    func scaleAndAdd(_ x: Tensor, _ a: Float, _ y: Tensor, _ b: Float) { count("scaleAndAdd"); inner.scaleAndAdd(x, a, y, b) }
    func adamW(parameter p: Tensor, gradient g: Tensor, firstMoment m: Tensor, secondMoment v: Tensor, _ s: AdamWStep) {
        count("adamW"); inner.adamW(parameter: p, gradient: g, firstMoment: m, secondMoment: v, s)
    }
}
