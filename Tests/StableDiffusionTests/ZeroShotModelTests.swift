import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// A Stable Diffusion pipeline as a `ClassifierModel`: the differentiable classifier (and RDC)
/// run on it through the VAE, as on a pixel-space U-Net.
final class ZeroShotModelTests: XCTestCase {
    func zeroShot() throws -> ZeroShotModel {
        try ZeroShotModel(folder: fixtureURL("pipeline"), labels: ["cat", "dog", "bird"], imageSize: 16)
    }

    /// The logits' gradient with respect to the pixels reaches them through the VAE encoder and
    /// matches a central finite difference along a random direction.
    func testLogitsAreDifferentiableThroughTheVAE() throws {
        let z = try zeroShot()
        let model = z.classifierModel()
        XCTAssertEqual(model.conditions, [0, 1, 2])
        XCTAssertNil(model.unconditional)
        let head = DiffusionLogits(model: model.predictor, schedule: model.schedule, conditions: model.conditions,
                                   timesteps: [100, 500], batchSize: 4, encoder: model.encoder)
        var g = RandomGenerator(seed: 4)
        let x = Tensor.uniform([1, 3, 16, 16], low: 0.2, high: 0.8, generator: &g)
        let direction = Tensor.uniform([1, 3, 16, 16], low: -1, high: 1, generator: &g)
        func margin(_ logits: Tensor) -> Tensor { logits.sliced(axis: 1, 0..<1).sum() - logits.sliced(axis: 1, 1..<2).sum() }
        let (_, grads) = valueAndGradient(at: [x]) { margin(head.logits($0[0], randomness: 7)) }
        let analytic = (grads[0] * direction).sum().item
        let h: Float = 1e-2
        let plus = Autograd.noGrad { margin(head.logits(x + direction * h, randomness: 7)).item }
        let minus = Autograd.noGrad { margin(head.logits(x - direction * h, randomness: 7)).item }
        let numeric = (plus - minus) / (2 * h)
        XCTAssertNotEqual(analytic, 0)
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(abs(numeric), 1e-3), "analytic \(analytic), numeric \(numeric)")
    }

    /// With an unconditional model (the empty prompt, condition K), RDC runs on the pipeline and
    /// the classes' prompt embeddings are unchanged by the extra row.
    func testUnconditionalIsTheEmptyPrompt() throws {
        let z = try zeroShot()
        let model = z.classifierModel(unconditional: true)
        XCTAssertEqual(model.unconditional, 3)
        let conditioned = try XCTUnwrap(model.predictor as? PromptConditionedUNet)
        XCTAssertEqual(conditioned.classCount, 4)
        XCTAssertEqual(conditioned.embeddings.sliced(axis: 0, 0..<3).scalars, z.model.embeddings.scalars)
        let head = DiffusionLogits(model: model.predictor, schedule: model.schedule, conditions: model.conditions,
                                   timesteps: [300], batchSize: 4, encoder: model.encoder)
        var lm = LikelihoodMaximization()
        lm.steps = 1
        let rdc = RobustDiffusionClassifier(head: head, lm: lm, unconditional: model.unconditional!)
        var g = RandomGenerator(seed: 5)
        let x = Tensor.uniform([1, 3, 16, 16], low: 0, high: 1, generator: &g)
        let purified = Autograd.noGrad { rdc.purify(x, randomness: 3) }
        XCTAssertEqual(purified.shape, x.shape)
        let moved = (purified - x).abs().max().item
        XCTAssertGreaterThan(moved, 0)
        XCTAssertLessThanOrEqual(moved, Float(lm.eta) + 1e-6)
    }

    /// A prompt beyond the tokenizer's 77 tokens is reported (the CLI warns), a short one is not.
    func testPromptsBeyondTheTokenLimitAreReported() throws {
        let pipeline = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"))
        let long = Array(repeating: "cat", count: 100).joined(separator: " ")
        let model = try ZeroShotModel(pipeline: pipeline, labels: ["dog", long], imageSize: 16)
        let cut = model.truncatedPrompts
        XCTAssertEqual(cut.map(\.prompt), ["a photo of a \(long)."])
        XCTAssertEqual(cut.first?.tokens, pipeline.tokenizer.encode("a photo of a \(long).").count)
        XCTAssertGreaterThan(cut.first?.tokens ?? 0, pipeline.tokenizer.modelMaxLength)
    }

    func testBadTemplateAndImageSizeNameTheSetting() throws {
        let pipeline = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"))
        XCTAssertThrowsError(try ZeroShotModel(pipeline: pipeline, labels: ["a"], template: "no slot", imageSize: 16)) {
            XCTAssertEqual(($0 as? SettingError)?.setting, .template, "\($0)")
        }
        XCTAssertThrowsError(try ZeroShotModel(pipeline: pipeline, labels: ["a"], imageSize: 15)) {
            XCTAssertEqual(($0 as? SettingError)?.setting, .imageSize, "\($0)")
        }
    }
}
