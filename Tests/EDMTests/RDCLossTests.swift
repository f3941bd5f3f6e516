import Diffusion
import DiffusionClassifier
import EDM
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// RDC's sigma-grid loss on an EDM denoiser against tools/make_rdc_fixtures.py (RDC's
/// EDMEulerIntegralDC computed with NVlabs/edm's EDMPrecond on a random DDPM++-like network
/// converted from a state dict in RDC's key layout), within 1e-4 relative.
final class RDCLossTests: XCTestCase {
    let grid = SigmaGrid(lower: 1e-4, upper: 3, count: 12)
    var folder: URL { fixtureURL("rdc_cond") }

    func load() throws -> (EDMNoisePredictor, SafetensorsFile, Tensor, FileNoise) {
        let model = try EDMModel.load(from: folder)
        let file = try SafetensorsFile(url: folder.appendingPathComponent("rdc.safetensors"))
        let noise = try FileNoise(url: folder.appendingPathComponent("rdc.safetensors"))
        return (EDMNoisePredictor(model: model, grid: grid), file, try file.tensor("x"), noise)
    }

    func logits(_ p: EDMNoisePredictor, _ x: Tensor, noise: FileNoise, density: SigmaDensity, conditions: [Int]) -> Tensor {
        DiffusionLogits(model: p, schedule: p.schedule, conditions: conditions, timesteps: Array(0..<grid.count),
                        weighting: .rdc(density), noise: noise).logits(x, randomness: 0)
    }

    func testConvertedStateDictLoadsWithRDCKeys() throws {
        let model = try EDMModel.load(from: folder)
        XCTAssertEqual(model.labelDim, 4)
        XCTAssertEqual(model.config.augmentDim, 9)
        XCTAssertTrue(model.namedParameters().map(\.key).contains("model.map_label.weight"))
    }

    func testLogitsAreMinusRDCLossForBothDensities() throws {
        let (p, file, x, noise) = try load()
        for density in SigmaDensity.allCases {
            let expected = try file.tensor("loss_\(density.rawValue)")
            let got = Autograd.noGrad { logits(p, x, noise: noise, density: density, conditions: [0, 1, 2, 3]) }
            XCTAssertLessThan(maxRelativeError(got * -1, expected), 1e-4, "\(density): \(got.scalars) vs \(expected.scalars)")
        }
        // The two densities give different losses (the code's precedence is not the paper's).
        let paper = try file.tensor("loss_paper"), code = try file.tensor("loss_code")
        XCTAssertGreaterThan(maxRelativeError(code, paper), 0.1)
    }

    func testUnconditionalLossIsTheZeroLabelVector() throws {
        let (p, file, x, noise) = try load()
        let got = Autograd.noGrad { logits(p, x, noise: noise, density: .paper, conditions: [p.unconditional]) }
        XCTAssertLessThan(maxRelativeError(got.reshaped([2]) * -1, try file.tensor("loss_uncond")), 1e-4)
    }

    func testGradientOfTheLossMatches() throws {
        let (p, file, x, noise) = try load()
        let x0 = x.sliced(axis: 0, 0..<1)
        let g = valueAndGradient(at: [x0]) { xs in
            self.logits(p, xs[0], noise: noise, density: .paper, conditions: [1]).sum() * -1
        }.gradients[0]
        XCTAssertLessThan(maxRelativeError(g, try file.tensor("grad_paper")), 1e-3)
    }

    func testClassifierMeanErrorsAreTheLoss() throws {
        let (p, file, x, noise) = try load()
        let settings = EvaluationSettings(model: "m", dataset: "d", split: "s", classes: 4, schedule: p.schedule,
                                          method: .fixed(.grid(grid.count)), weighting: .rdc(.paper))
        XCTAssertEqual(settings.sigmas, grid)
        let classifier = try Classifier(model: p, schedule: p.schedule, conditions: [0, 1, 2, 3], strategy: settings.method.strategy,
                                        options: settings.classifierOptions(batchSize: 20), noiseFile: noise)
        let expected = try file.tensor("loss_paper").scalars
        for i in 0..<2 {
            let c = try classifier.classify(x.sliced(axis: 0, i..<(i + 1)) * 2 - 1, imageIndex: i)
            XCTAssertEqual(c.calls, 4 * grid.count)
            for k in 0..<4 {
                XCTAssertEqual(c.meanErrors[k]!, Double(expected[i * 4 + k]), accuracy: 1e-4 * Double(expected[i * 4 + k]))
            }
        }
    }

    func testSigmaSpaceLikelihoodMaximizationLoss() throws {
        let (p, file, x, _) = try load()
        let sigmas = try file.tensor("lm_sigma").scalars, eps = try file.tensor("lm_eps")
        let (value, grads) = valueAndGradient(at: [x]) { xs in
            LikelihoodMaximization.unconditionalLoss(xs[0], denoiser: p, unconditional: p.unconditional, sigmas: sigmas, noise: eps)
        }
        XCTAssertLessThan(maxRelativeError(value.reshaped([1]), try file.tensor("lm_loss")), 1e-4)
        XCTAssertLessThan(maxRelativeError(grads[0], try file.tensor("lm_grad")), 1e-3)
    }

    func testSigmaSpaceLMLowersTheUnconditionalLossAndStaysInTheBall() throws {
        let (p, _, x, _) = try load()
        var lm = try LikelihoodMaximization(parsing: "steps=3,eta=8/255,variant=paper")
        lm.gradient = .bpda
        let out = Autograd.noGrad { lm.run(x, model: p, schedule: p.schedule, unconditional: p.unconditional, randomness: 7, denoiser: p) }
        let d = (out - x).scalars.map { Swift.abs(Double($0)) }.max()!
        XCTAssertLessThanOrEqual(d, 8.0 / 255 + 1e-6)
        XCTAssertGreaterThan(d, 1e-3)
        var g = RandomGenerator(seed: 3)
        let e = Tensor.randn(x.shape, generator: &g)
        func loss(_ y: Tensor) -> Float {
            Autograd.noGrad { LikelihoodMaximization.unconditionalLoss(y, denoiser: p, unconditional: p.unconditional, sigmas: [0.5, 0.5], noise: e).item }
        }
        XCTAssertLessThan(loss(out), loss(x))
    }

    func testWeightingAndGridTextForms() throws {
        for text in ["rdc:paper", "rdc:code"] { XCTAssertEqual(try TimestepWeighting(parsing: text).name, text) }
        XCTAssertEqual(try TimestepWeighting(parsing: "rdc"), .rdc(.paper))
        XCTAssertEqual(try SigmaGrid(parsing: grid.description), grid)
        XCTAssertEqual(SigmaGrid.rdc.levels.count, 1000)
        XCTAssertEqual(SigmaGrid.rdc.levels[999], 3 - 2.9999 / 1000, accuracy: 1e-12)
        XCTAssertThrowsError(try SigmaGrid(parsing: "0:3:10"))
        XCTAssertThrowsError(try SigmaGrid(parsing: "1e-4:3"))
        // The paper's density integrates to 1 over ln sigma, the code's to 1 / P_std^2.
        var paper = 0.0, code = 0.0
        let du = 1e-3
        for u in stride(from: -20.0, to: 20.0, by: du) {
            let s = Foundation.exp(u)
            paper += SigmaDensity.paper.value(s) * s * du
            code += SigmaDensity.code.value(s) * s * du
        }
        XCTAssertEqual(paper, 1, accuracy: 1e-6)
        XCTAssertEqual(code, 1 / (1.2 * 1.2), accuracy: 1e-6)
    }
}
