import Foundation
import XCTest
import TensorEngine

/// The backend seam: every op reaches `Engine.backend`; the CPU and reference backends agree on
/// every op (values and gradients, to rounding; exact ops bit for bit) on random inputs with odd
/// sizes and batch 1; the backend choice is task-local, does not leak, and a gradient is computed
/// by the backend that computed its forward.
final class BackendTests: XCTestCase {
    struct Case {
        let name: String
        let inputs: [Tensor]
        var rtol: Float = 2e-4
        var atol: Float = 2e-5
        /// Whether the op has a gradient to compare (comparisons, argmax, sign have none).
        var differentiable = true
        let f: ([Tensor]) -> Tensor
    }

    static func r(_ shape: [Int], _ seed: UInt64, scale: Float = 1, shift: Float = 0) -> Tensor {
        randomTensor(shape, seed: seed, scale: scale, shift: shift)
    }

    /// Every public op, on shapes with odd sizes and batch 1 where the op has a batch.
    static var cases: [Case] {
        func r(_ shape: [Int], _ seed: UInt64, scale: Float = 1, shift: Float = 0) -> Tensor {
            BackendTests.r(shape, seed, scale: scale, shift: shift)
        }
        var list: [Case] = []
        func add(_ name: String, _ inputs: [Tensor], rtol: Float = 2e-4, atol: Float = 2e-5, differentiable: Bool = true,
                 _ f: @escaping ([Tensor]) -> Tensor) {
            list.append(Case(name: name, inputs: inputs, rtol: rtol, atol: atol, differentiable: differentiable, f: f))
        }
        // Broadcast arithmetic.
        let a = r([3, 1, 5], 1), b = r([4, 1], 2), pos = r([4, 1], 3, scale: 0.3, shift: 2)
        add("add", [a, b]) { $0[0] + $0[1] }
        add("sub", [a, b]) { $0[0] - $0[1] }
        add("mul", [a, b]) { $0[0] * $0[1] }
        add("div", [a, pos]) { $0[0] / $0[1] }
        add("pow", [r([3, 4, 5], 4, scale: 0.2, shift: 1.5), r([5], 5, scale: 0.5)]) { $0[0].pow($0[1]) }
        add("minimum", [a, b]) { $0[0].minimum($0[1]) }
        add("maximum", [a, b]) { $0[0].maximum($0[1]) }
        add("where", [a, b]) { Tensor.where(r([3, 4, 1], 6).greater(0), $0[0], $0[1]) }
        add("comparisons", [a, b], differentiable: false) { $0[0].greater($0[1]) + $0[0].less($0[1]) * 2 + $0[0].equal($0[0]) * 4 }
        // Scalar forms and unary math.
        let x = r([2, 7, 3], 7), p = r([2, 7, 3], 8, scale: 0.3, shift: 2)
        add("scalars", [x]) { ((($0[0] + 1.5) * 0.7 - 0.2) / 3) }
        add("scalar minus and over", [p]) { (2 - $0[0]) + (3 / $0[0]) }
        add("neg", [x]) { -$0[0] }
        add("pow scalar", [p]) { $0[0].pow(3) + $0[0].pow(0.5) + $0[0].pow(2) }
        for (name, op) in [("exp", { (t: Tensor) in t.exp() }), ("abs", { $0.abs() }), ("sin", { $0.sin() }), ("cos", { $0.cos() }),
                           ("sigmoid", { $0.sigmoid() }), ("tanh", { $0.tanh() }), ("silu", { $0.silu() }), ("relu", { $0.relu() }),
                           ("softplus", { $0.softplus() }), ("gelu", { $0.gelu() }), ("gelu tanh", { $0.gelu(approximate: true) }),
                           ("quick gelu", { $0.quickGelu() }), ("square", { $0.square() }),
                           ("clamp", { $0.clamp(min: -0.5, max: 0.8) })] as [(String, (Tensor) -> Tensor)] {
            add(name, [x]) { op($0[0]) }
        }
        add("softplus large", [r([9], 9, scale: 15)]) { $0[0].softplus() }
        add("log sqrt rsqrt", [p]) { $0[0].log() + $0[0].sqrt() + $0[0].rsqrt() }
        add("sign and scalar comparisons", [x], differentiable: false) { $0[0].sign() + $0[0].greater(0.1) + $0[0].less(-0.2) }
        // Reductions.
        let t = r([1, 5, 3, 7], 10)
        add("sum", [t]) { $0[0].sum(axes: [1, 3]) + $0[0].sum(axes: [2], keepDims: true).sum() }
        add("mean variance", [t]) { $0[0].mean(axes: [0, 2]) + $0[0].variance(axes: [2, 0]) }
        add("max min", [t]) { $0[0].max(axes: [1]) + $0[0].min(axes: [1], keepDims: true).sum(axes: [1]) }
        add("logsumexp", [t]) { $0[0].logSumExp(axes: [1, 3]) }
        add("argmax argmin", [t], differentiable: false) { $0[0].argmax(axis: 1) + $0[0].argmin(axis: -1).sum() }
        // Layout.
        add("permute", [t]) { $0[0].permuted([2, 0, 3, 1]) }
        add("transpose slice pad", [t]) { $0[0].transposed(1, 3).sliced(axis: 1, 2..<6).padded(axis: 2, before: 1, after: 2, value: 0.5) }
        add("concat split", [t, r([1, 2, 3, 7], 11)]) { xs in
            let c = Tensor.concat([xs[0], xs[1]], axis: 1)
            return Tensor.stack(c.split(sizes: [4, 3], axis: 1).map { $0.sum(axes: [1]) }, axis: 0)
        }
        add("expand", [r([3, 1, 2], 12)]) { $0[0].expanded(to: [2, 3, 4, 2]) }
        add("gather rows", [r([5, 2, 3], 13)]) { $0[0].gatherRows([4, 0, 4, 2]) }
        add("replace rows", [r([5, 2, 3], 14), r([2, 2, 3], 15)]) { $0[0].replacingRows([3, 0], with: $0[1]) }
        // Products and images.
        add("matmul batched", [r([2, 1, 3, 5], 16), r([4, 5, 7], 17)]) { $0[0].matmul($0[1]) }
        add("matmul batch 1", [r([1, 9, 13], 18), r([13, 3], 19)]) { $0[0].matmul($0[1]) }
        add("linear", [r([1, 3, 11], 20), r([5, 11], 21), r([5], 22)]) { $0[0].linear(weight: $0[1], bias: $0[2]) }
        let img = r([2, 3, 9, 7], 23)
        add("conv 3x3 (Winograd)", [img, r([5, 3, 3, 3], 24), r([5], 25)], rtol: 1e-3, atol: 1e-4) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
        add("conv 3x3 im2col", [img, r([5, 3, 3, 3], 24), r([5], 25)]) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], stride: 1, padding: 1, algorithm: .im2col)
        }
        add("conv 1x1 batch 1", [r([1, 4, 17, 16], 26), r([6, 4, 1, 1], 27)]) { $0[0].conv2d(weight: $0[1]) }
        add("conv strided grouped", [r([1, 4, 9, 8], 28), r([6, 2, 3, 2], 29), r([6], 30)]) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], stride: (2, 1), padding: (1, 0), groups: 2)
        }
        add("avg pool", [img]) { $0[0].avgPool2d(kernel: (2, 3), stride: (2, 2)) }
        add("upsample", [img]) { $0[0].upsampleNearest(scale: (2, 3)) }
        let fir = r([4, 3], 64)
        add("depthwise conv", [img]) { $0[0].depthwiseConv2d(filter: fir, stride: 2, padding: 1) }
        add("depthwise conv transpose", [img]) { $0[0].depthwiseConvTranspose2d(filter: fir, stride: 2, padding: 1, outputPadding: 1) }
        // Fused layers.
        let gx = r([1, 6, 5, 3], 31, scale: 2, shift: 3), gw = r([6], 32), gb = r([6], 33)
        add("group norm", [gx, gw, gb]) { $0[0].groupNorm(groups: 3, weight: $0[1], bias: $0[2]) }
        add("group norm + SiLU", [gx, gw, gb]) { $0[0].groupNormSiLU(groups: 2, weight: $0[1], bias: $0[2]) }
        add("layer norm", [r([3, 2, 7], 34), r([2, 7], 35), r([2, 7], 36)]) {
            $0[0].layerNorm(normalizedShape: [2, 7], weight: $0[1], bias: $0[2])
        }
        add("layer norm plain", [r([1, 9], 37)]) { $0[0].layerNorm() }
        add("softmax", [r([3, 11], 38, scale: 3)]) { $0[0].softmax() }
        add("softmax middle axis", [r([2, 5, 3], 39)]) { $0[0].softmax(axis: 1) }
        add("log softmax", [r([2, 5, 3], 40, scale: 4)]) { $0[0].logSoftmax(axis: 0) + $0[0].logSoftmax() }
        add("attention causal", [r([1, 2, 5, 4], 41), r([1, 2, 7, 4], 42), r([1, 2, 7, 3], 43)]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true)
        }
        add("attention mask", [r([2, 3, 6, 4], 44), r([2, 3, 5, 4], 45), r([2, 3, 5, 2], 46), r([3, 1, 5], 47)]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], attentionMask: $0[3], scale: 0.7)
        }
        add("attention fully masked row", [r([1, 2, 4], 48), r([1, 3, 4], 49), r([1, 3, 2], 50)]) {
            let m = Tensor(shape: [2, 3], [0, -Float.infinity, 0, -Float.infinity, -Float.infinity, -Float.infinity])
            return Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], attentionMask: m)
        }
        add("embedding", [r([6, 4], 51)]) { Tensor.embedding(indices: Tensor(shape: [2, 3], [5, 0, 5, 2, 1, 0]), weight: $0[0]) }
        add("dropout", [r([3, 7], 52)]) { xs in
            var g = RandomGenerator(seed: 3)
            return xs[0].dropout(probability: 0.3, generator: &g)
        }
        return list
    }

    func testEveryOpAgreesOnBothBackendsInValueAndGradients() {
        for c in Self.cases {
            let cpu = c.differentiable ? valueAndGradients(c.inputs, c.f) : [Autograd.noGrad { c.f(c.inputs) }]
            let reference = Engine.withBackend(.reference) {
                c.differentiable ? valueAndGradients(c.inputs, c.f) : [Autograd.noGrad { c.f(c.inputs) }]
            }
            XCTAssertEqual(cpu.count, reference.count, c.name)
            for (k, (x, y)) in zip(cpu, reference).enumerated() {
                XCTAssert(x.scalars.allSatisfy(\.isFinite), "\(c.name): non-finite CPU result \(k)")
                assertClose(y, x, rtol: c.rtol, atol: c.atol, "\(c.name) \(k == 0 ? "value" : "gradient of input \(k - 1)")")
            }
        }
    }

    func testEveryOpReachesTheBackendForwardAndBackward() {
        let spy = SpyBackend()
        for c in Self.cases {
            spy.reset()
            let cpu = Autograd.noGrad { c.f(c.inputs) }
            let spied = Engine.withBackend(spy) { Autograd.noGrad { c.f(c.inputs) } }
            XCTAssertGreaterThan(spy.totalCalls, 0, "\(c.name): forward computed outside the backend")
            // The spy forwards to the CPU backend: the same bits.
            XCTAssertEqual(spied.scalars.map(\.bitPattern), cpu.scalars.map(\.bitPattern), c.name)
            guard c.differentiable else { continue }
            let leaves = c.inputs.map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) }
            let y = Engine.withBackend(spy) { c.f(leaves) }
            spy.reset()
            y.backward(Tensor.ones(y.shape))   // outside withBackend: the nodes still compute on the spy
            XCTAssertGreaterThan(spy.totalCalls, 0, "\(c.name): gradient computed outside the backend")
        }
    }

    func testExactOpsAreBitIdenticalOnBothBackends() {
        func both(_ f: () -> [Tensor]) -> ([Tensor], [Tensor]) { (f(), Engine.withBackend(.reference) { f() }) }
        let x = Self.r([3, 5, 4], 60)
        let (a, b) = both {
            var g = RandomGenerator(seed: 11, stream: 2, offset: 5)
            var d = RandomGenerator(seed: 4)
            return [x.permuted([1, 2, 0]), x.sliced(axis: 2, 1..<3), x.padded(axis: 0, before: 2, after: 1, value: -3),
                    Tensor.concat([x, x.sliced(axis: 1, 0..<2)], axis: 1), x.expanded(to: [2, 3, 5, 4]),
                    x.gatherRows([2, 2, 0]), x.replacingRows([1], with: x.sliced(axis: 0, 0..<1)),
                    Tensor.where(x.greater(0), x, -x), x.copy(), x.max(axes: [1]), x.argmax(axis: 2), x.sign(),
                    Tensor.randn([4, 9], generator: &g), Tensor.randn([5], mean: 2, std: 3, generator: &g),
                    Tensor.rand([7], generator: &g), Tensor.uniform([6], low: -2, high: 5, generator: &g),
                    Tensor.uniform([9], low: -1, high: 1, generator: &g, layout: .onePerBlock),
                    Tensor.randint([11], upperBound: 7, generator: &g), Tensor.randint([3], upperBound: 1 << 24, generator: &g),
                    x.dropout(probability: 0.4, generator: &d), Tensor(Float(g.offset))]
        }
        for (k, (u, v)) in zip(a, b).enumerated() {
            XCTAssertEqual(u.shape, v.shape, "result \(k)")
            XCTAssertEqual(u.scalars.map(\.bitPattern), v.scalars.map(\.bitPattern), "result \(k)")
        }
        // Reductions to the host, in place updates: the same arithmetic on both.
        let p = Self.r([4, 6], 61), q = Self.r([4, 6], 62)
        XCTAssertEqual(Tensor.sumOfSquares([p, q]), Engine.withBackend(.reference) { Tensor.sumOfSquares([p, q]) })
        for loss in [PointwiseLoss.squared, .absolute, .huber] {
            XCTAssertEqual(p.rowMeanLoss(target: q, loss), Engine.withBackend(.reference) { p.rowMeanLoss(target: q, loss) })
        }
        func updated() -> [Tensor] {
            let w = p.copy(), m = q.copy(), v = q.square(), s = q.copy()
            w.applyAdamW(gradient: q, firstMoment: m, secondMoment: v,
                         AdamWStep(beta1: 0.9, beta2: 0.99, eps: 1e-8, decay: 0.999, stepSize: 0.01, secondMomentCorrectionRoot: 0.3))
            s.scaleAndAdd(0.7, p, -0.2)
            let t = Tensor.zeros(p.shape)
            t.assign(s)
            return [w, m, v, s, t]
        }
        for (u, v) in zip(updated(), Engine.withBackend(.reference) { updated() }) {
            XCTAssertEqual(u.scalars.map(\.bitPattern), v.scalars.map(\.bitPattern))
        }
    }

    func testConversionsAgreeOnBothBackends() {
        // Every external format, at an odd (unaligned) byte offset, against Swift's own conversion.
        let values: [Double] = [0, 1, -2, 3.5, 255, -128, 1e-3, 65504, 7]
        for format in ScalarFormat.allCases {
            var bytes: [UInt8] = [0xAB]   // misalign the data by one byte
            var expected: [Float] = []
            func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
            for v in values {
                switch format {
                case .float32: put(Float(v).bitPattern); expected.append(Float(v))
                case .float64: put(v.bitPattern); expected.append(Float(v))
                case .float16:
                    put(HalfPrecision.float16Bits(from: Float(v)))
                    expected.append(HalfPrecision.float(fromFloat16Bits: HalfPrecision.float16Bits(from: Float(v))))
                case .bfloat16:
                    put(HalfPrecision.bfloat16Bits(from: Float(v)))
                    expected.append(HalfPrecision.float(fromBFloat16Bits: HalfPrecision.bfloat16Bits(from: Float(v))))
                case .bool: bytes.append(v == 0 ? 0 : 3); expected.append(v == 0 ? 0 : 1)
                case .uint8: put(UInt8(clamping: Int(v.magnitude))); expected.append(Float(UInt8(clamping: Int(v.magnitude))))
                case .int8: put(Int8(clamping: Int(v))); expected.append(Float(Int8(clamping: Int(v))))
                case .int16: put(Int16(clamping: Int(v))); expected.append(Float(Int16(clamping: Int(v))))
                case .uint16: put(UInt16(v.magnitude)); expected.append(Float(UInt16(v.magnitude)))
                case .int32: put(Int32(v)); expected.append(Float(Int32(v)))
                case .uint32: put(UInt32(v.magnitude)); expected.append(Float(UInt32(v.magnitude)))
                case .int64: put(Int64(v)); expected.append(Float(Int64(v)))
                case .uint64: put(UInt64(v.magnitude)); expected.append(Float(UInt64(v.magnitude)))
                }
            }
            let decode = {
                bytes.withUnsafeBytes { raw in
                    Tensor(shape: [3, 3], bytes: UnsafeRawBufferPointer(rebasing: raw[1...]), format: format).scalars
                }
            }
            XCTAssertEqual(decode(), expected, "\(format) CPU")
            XCTAssertEqual(Engine.withBackend(.reference) { decode() }, expected, "\(format) reference")
        }
        // 16-bit tensors: rounding, expansion and row lookup.
        let x = Self.r([5, 3], 63, scale: 100)
        for format in HalfFormat.allCases {
            func run() -> [[UInt32]] {
                let h = HalfTensor(rounding: x, to: format)
                return [h.bitPatterns.map(UInt32.init), h.float().scalars.map(\.bitPattern),
                        h.embedding(indices: Tensor(shape: [2], [4, 1])).scalars.map(\.bitPattern)]
            }
            XCTAssertEqual(run(), Engine.withBackend(.reference) { run() }, "\(format)")
        }
    }

    func testBackendChoiceIsTaskLocalAndDoesNotLeak() throws {
        XCTAssertEqual(Engine.backend.name, "cpu")
        Engine.withBackend(.reference) {
            XCTAssertEqual(Engine.backend.name, "reference")
            Engine.withBackend(.cpu) { XCTAssertEqual(Engine.backend.name, "cpu") }
            XCTAssertEqual(Engine.backend.name, "reference")
            // Another thread does not see this thread's choice.
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var seen = ""
            Thread { seen = Engine.backend.name; done.signal() }.start()
            done.wait()
            XCTAssertEqual(seen, "cpu")
        }
        XCTAssertEqual(Engine.backend.name, "cpu")
        struct Stop: Error {}
        XCTAssertThrowsError(try Engine.withBackend(.reference) { () throws -> Void in throw Stop() })
        XCTAssertEqual(Engine.backend.name, "cpu", "a throwing body restores the backend")
    }

    func testChildTasksInheritTheBackend() async {
        let inherited = await Engine.$backend.withValue(ReferenceBackend.shared) {
            await Task { Engine.backend.name }.value
        }
        XCTAssertEqual(inherited, "reference")
        XCTAssertEqual(Engine.backend.name, "cpu")
    }

    func testGradientRunsOnTheBackendOfItsForward() {
        let spy = SpyBackend()
        let x = Tensor(shape: [4], [0.5, -1, 2, 0.25], requiresGrad: true)
        // Recorded on the CPU, differentiated inside the spy: the exp node computes on the CPU.
        let y = x.exp().sum()
        Engine.withBackend(spy) { y.backward() }
        XCTAssertNil(spy.calls["unaryGradient"], "the node's gradient ran on the backend in effect at backward")
        XCTAssertEqual(x.grad!.scalars, x.exp().scalars)
        // Recorded inside the spy, differentiated outside: the exp node computes on the spy.
        x.zeroGrad()
        let z = Engine.withBackend(spy) { x.exp().sum() }
        spy.reset()
        z.backward()
        XCTAssertEqual(spy.calls["unaryGradient"], 1)
        XCTAssertEqual(x.grad!.scalars, x.exp().scalars)
    }
}

/// The ops added with the seam: their gradients against finite differences and their definitions.
final class SeamOpsTests: XCTestCase {
    func testGradientsMatchFiniteDifferences() {
        let x = randomTensor([3, 4], seed: 1), v = randomTensor([2, 4], seed: 2)
        checkGradients([x]) { $0[0].sin() }
        checkGradients([x]) { $0[0].cos() }
        checkGradients([x]) { $0[0].gatherRows([2, 0, 2]) }
        checkGradients([x, v]) { $0[0].replacingRows([1, 2], with: $0[1]) }
    }

    func testDefinitions() {
        // One-per-block uniforms are the values of successive scalar draws.
        var g = RandomGenerator(seed: 9, stream: 1), h = g
        let t = Tensor.uniform([2, 5], low: -0.3, high: 0.3, generator: &g, layout: .onePerBlock)
        XCTAssertEqual(t.scalars, (0..<10).map { _ in h.nextFloat(low: -0.3, high: 0.3) })
        XCTAssertEqual(g, h, "the generator advances by one block per value")
        // gatherRows and replacingRows against slices.
        let x = randomTensor([4, 2, 3], seed: 3)
        XCTAssertEqual(x.gatherRows([3, 1]).scalars, x.sliced(axis: 0, 3..<4).scalars + x.sliced(axis: 0, 1..<2).scalars)
        let r = x.replacingRows([2], with: Tensor.zeros([1, 2, 3]))
        XCTAssertEqual(r.scalars, x.sliced(axis: 0, 0..<2).scalars + [Float](repeating: 0, count: 6) + x.sliced(axis: 0, 3..<4).scalars)
        // rowMeanLoss: Float difference, Float64 loss and mean per row.
        let p = randomTensor([2, 5], seed: 4, scale: 2), q = randomTensor([2, 5], seed: 5)
        let (ps, qs) = (p.scalars, q.scalars)
        for loss in [PointwiseLoss.squared, .absolute, .huber] {
            let expected = (0..<2).map { i in (0..<5).map { loss.value(Double(ps[i * 5 + $0] - qs[i * 5 + $0])) }.reduce(0, +) / 5 }
            XCTAssertEqual(p.rowMeanLoss(target: q, loss), expected)
        }
        XCTAssertEqual(Tensor.sumOfSquares([p, q]), (ps + qs).reduce(0.0) { $0 + Double($1) * Double($1) })
        // scaleAndAdd in place, each product rounded before the sum.
        let a = p.copy()
        a.scaleAndAdd(0.3, q, -1.7)
        XCTAssertEqual(a.scalars, zip(ps, qs).map { 0.3 * $0 + -1.7 * $1 })
    }
}
