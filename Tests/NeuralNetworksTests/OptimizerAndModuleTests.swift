import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

final class OptimizerAndModuleTests: XCTestCase {
    /// Values from torch.optim.AdamW(lr=0.1, weight_decay=0.01) on the same gradients.
    func testAdamWMatchesTorch() {
        let p = Tensor(shape: [3], [0.5, -1.0, 2.0], requiresGrad: true)
        let opt = AdamW(parameters: [p], learningRate: 0.1, weightDecay: 0.01)
        let expected: [[Float]] = [[0.3995000124, -0.8989999890, 1.8980000019],
                                   [0.3025822937, -0.8015827537, 1.7995839119],
                                   [0.2064795792, -0.7049810886, 1.7019841671]]
        for step in 0..<3 {
            p.grad = Tensor(shape: [3], [0.3, -0.2, 0.1].map { $0 * Float(step + 1) })
            opt.update()
            for (a, b) in zip(p.scalars, expected[step]) { XCTAssertEqual(a, b, accuracy: 2e-6, "step \(step)") }
        }
    }

    /// torch.nn.utils.clip_grad_norm_ gives norm 13 and these clipped gradients.
    func testClipGradientNormMatchesTorch() {
        let q = Tensor(shape: [2], [1, 2], requiresGrad: true), r = Tensor(shape: [1], [2], requiresGrad: true)
        q.grad = Tensor(shape: [2], [3, 4]); r.grad = Tensor(shape: [1], [12])
        XCTAssertEqual(clipGradientNorm([q, r], maxNorm: 1), 13, accuracy: 1e-5)
        XCTAssertEqual(q.grad!.scalars[0], 0.23076921701, accuracy: 1e-6)
        XCTAssertEqual(q.grad!.scalars[1], 0.30769228935, accuracy: 1e-6)
        XCTAssertEqual(r.grad!.scalars[0], 0.92307686806, accuracy: 1e-6)
    }

    func testEMAFollowsTheDocumentedDecay() {
        let p = Tensor(shape: [1], [0], requiresGrad: true)
        let ema = ExponentialMovingAverage(parameters: [p], decay: 0.5)
        p.assign(Tensor(shape: [1], [1]))
        ema.update([p])                       // decay_1 = min(0.5, 2/11) = 2/11
        XCTAssertEqual(ema.shadow[0].item, 9.0 / 11.0, accuracy: 1e-6)
        ema.update([p])                       // decay_2 = min(0.5, 3/12) = 0.25
        XCTAssertEqual(ema.shadow[0].item, 0.25 * 9.0 / 11.0 + 0.75, accuracy: 1e-6)
    }

    func testOptimizerStateRoundTrip() throws {
        let p = Tensor(shape: [2], [1, 2], requiresGrad: true)
        let a = AdamW(parameters: [p], learningRate: 0.01)
        p.grad = Tensor(shape: [2], [0.5, -0.5]); a.update()
        let q = Tensor(shape: [2], p.scalars, requiresGrad: true)
        let b = AdamW(parameters: [q], learningRate: 0.01)
        try b.restore(a.state())
        p.grad = Tensor(shape: [2], [0.1, 0.2]); q.grad = Tensor(shape: [2], [0.1, 0.2])
        a.update(); b.update()
        XCTAssertEqual(p.scalars, q.scalars)
        XCTAssertThrowsError(try b.restore([:]))
    }

    final class TwoLayers: Module {
        let first: Linear, second: Linear
        override init() {
            var g = RandomGenerator(seed: 1)
            first = Linear(3, 4, generator: &g)
            second = Linear(4, 2, bias: false, generator: &g)
            super.init()
            child("first", first)
            child("layers", ModuleList([second]))
        }
    }

    func testModuleKeysLoadingAndPyTorchInitBounds() throws {
        let m = TwoLayers()
        XCTAssertEqual(m.namedParameters().map(\.key), ["first.weight", "first.bias", "layers.0.weight"])
        XCTAssertEqual(m.parameterCount, 12 + 4 + 8)
        let bound = 1 / Float(3).squareRoot()
        XCTAssertTrue(m.first.weight.scalars.allSatisfy { Swift.abs($0) <= bound })
        var state = m.stateDict()
        state["first.bias"] = Tensor(shape: [4], [1, 2, 3, 4])
        try m.load(state)
        XCTAssertEqual(m.first.bias!.scalars, [1, 2, 3, 4])
        state["first.bias"] = Tensor(shape: [5], [1, 2, 3, 4, 5])
        XCTAssertThrowsError(try m.load(state, source: "m.safetensors")) { e in
            XCTAssertEqual(e as? ParameterLoadingError, .shapeMismatch(key: "first.bias", expected: [4], found: [5], source: "m.safetensors"))
        }
        // Nothing was half-loaded by the failed call.
        XCTAssertEqual(m.first.bias!.scalars, [1, 2, 3, 4])
    }
}
