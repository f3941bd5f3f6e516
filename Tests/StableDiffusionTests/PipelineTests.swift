import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import Images
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// Rows of a [P, C, H, W] tensor as noise draws (draw k = row k).
private struct RowNoise: NoiseSource {
    let eps: Tensor
    func noise(_ k: Int) throws -> Tensor {
        eps.gatherRows([k])
    }
}

/// The zero-shot path on `Fixtures/pipeline/` (tiny random pieces, `tools/make_sd_fixtures.py
/// pipeline`) against the public algorithm computed with diffusers / transformers / PIL.
final class PipelineTests: XCTestCase {
    func testPreprocessingLatentsAndEmbeddingsMatchReference() throws {
        let pipe = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"))
        let io = try SafetensorsFile(url: fixtureURL("pipeline/pipeline_io.safetensors"))
        let image = try StableDiffusionImageInput.load(fixtureURL("pipeline/image.png"), size: 16)
        let expected = try io.tensor("image")
        XCTAssertEqual(image.shape, [1, 3, 16, 16])
        // PIL's bicubic, byte for byte: pixel values equal to float rounding.
        var worst: Float = 0
        let pi = image.scalars, pe = expected.scalars
        for i in 0..<image.count { worst = max(worst, abs(pi[i] - pe[i])) }
        XCTAssertLessThan(worst, 1e-6)
        let up = try StableDiffusionImageInput.load(fixtureURL("pipeline/image.png"), size: 32), upExpected = try io.tensor("image32")
        XCTAssertEqual(up.shape, [1, 3, 32, 32])
        worst = 0
        let pu = up.scalars, pue = upExpected.scalars
        for i in 0..<up.count { worst = max(worst, abs(pu[i] - pue[i])) }
        XCTAssertLessThan(worst, 1e-6, "upsampling")
        XCTAssertLessThan(relativeDifference(pipe.latents(image), try io.tensor("latent")), 1e-4)
        let embeddings = try pipe.promptEmbeddings(labels: ["cat", "dog", "bird"], template: "a photo of a {}.")
        XCTAssertLessThan(relativeDifference(embeddings, try io.tensor("embeddings")), 1e-4)
    }

    func testPerClassErrorsMatchPublicAlgorithm() throws {
        let pipe = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"))
        let io = try SafetensorsFile(url: fixtureURL("pipeline/pipeline_io.safetensors"))
        let x0 = pipe.latents(try StableDiffusionImageInput.load(fixtureURL("pipeline/image.png"), size: 16))
        let model = pipe.conditionedModel(embeddings: try pipe.promptEmbeddings(labels: ["cat", "dog", "bird"], template: "a photo of a {}."))
        let ts = try io.tensor("timesteps"), expected = try io.tensor("errors")
        let scorer = ImageScorer(model: model, schedule: pipe.schedule, x0: x0, conditions: [0, 1, 2], loss: .l2,
                                 weights: Array(repeating: 1, count: pipe.schedule.numTrainTimesteps), batchSize: 5,
                                 noise: RowNoise(eps: try io.tensor("eps")))
        let probes = scorer.addProbes(timesteps: (0..<ts.count).map { Int(ts.scalars[$0]) })
        try scorer.score(candidates: [0, 1, 2], probes: probes)
        XCTAssertEqual(scorer.calls, 12)
        for k in 0..<3 {
            for j in 0..<ts.count {
                let want = Double(expected.scalars[k * ts.count + j]), got = scorer.errors[k][j]
                XCTAssertEqual(got, want, accuracy: 1e-4 * abs(want), "class \(k), t \(ts.scalars[j])")
            }
        }
    }

    // The same zero-shot parity with every op on the reference backend (plain loops).
    func testPreprocessingLatentsAndEmbeddingsMatchReferenceOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testPreprocessingLatentsAndEmbeddingsMatchReference() }
    }

    func testPerClassErrorsMatchPublicAlgorithmOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testPerClassErrorsMatchPublicAlgorithm() }
    }

    func testMissingPartIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdpipe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for part in ["tokenizer", "text_encoder", "unet", "vae"] {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(part),
                                                       withDestinationURL: fixtureURL("pipeline").appendingPathComponent(part).resolvingSymlinksInPath())
        }
        XCTAssertThrowsError(try StableDiffusionPipeline.load(from: dir)) { error in
            XCTAssertTrue("\(error)".contains("scheduler/scheduler_config.json"), "\(error)")
        }
        XCTAssertThrowsError(try StableDiffusionPipeline.prompts(labels: ["a"], template: "no placeholder"))
        XCTAssertEqual(try StableDiffusionPipeline.prompts(labels: ["cat"], template: "a photo of a {}."), ["a photo of a cat."])
    }

    func testTorchvisionResizeSize() {
        XCTAssertEqual(StableDiffusionImageInput.resizedSize(width: 24, height: 20, size: 16).width, 19)
        XCTAssertEqual(StableDiffusionImageInput.resizedSize(width: 500, height: 375, size: 512).width, 682)
        XCTAssertEqual(StableDiffusionImageInput.resizedSize(width: 375, height: 500, size: 512).height, 682)
    }
}
