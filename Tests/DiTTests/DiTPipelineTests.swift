import DiT
import Diffusion
import DiffusionClassifier
import Foundation
import LatentDiT
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// A DiTPipeline folder saved by diffusers (`tools/make_dit_fixtures.py pipeline`: tiny DiT with
/// learned sigma, tiny VAE, DDIMScheduler, id2label of 4 ImageNet names) classified with the
/// project's `Classifier`, against the same algorithm computed with diffusers.
final class DiTPipelineTests: XCTestCase {
    func testLoadsFolderSavedByDiffusers() throws {
        XCTAssertTrue(DiTPipeline.isPipelineFolder(fixtureURL("pipeline")))
        XCTAssertFalse(DiTPipeline.isPipelineFolder(fixtureURL("dit_sigma")))
        let pipe = try DiTPipeline.load(from: fixtureURL("pipeline"))
        XCTAssertEqual(pipe.classNames, ["tench, Tinca tinca", "goldfish, Carassius auratus",
                                         "great white shark, white shark, man-eater", "tiger shark, Galeocerdo cuvieri"])
        XCTAssertEqual(pipe.classID(named: "white shark"), 2, "a synonym, as diffusers' get_label_ids")
        XCTAssertEqual(pipe.classID(named: "tench, Tinca tinca"), 0)
        XCTAssertNil(pipe.classID(named: "shark"))
        XCTAssertEqual(pipe.imageSize, 16)
        XCTAssertTrue(pipe.transformer.config.learnsSigma)
        let io = try SafetensorsFile(url: fixtureURL("pipeline/io.safetensors"))
        let abar = try io.tensor("alphas_cumprod").scalars
        XCTAssertEqual(pipe.schedule.numTrainTimesteps, 1000)
        for t in [0, 50, 300, 600, 900, 999] {
            XCTAssertEqual(pipe.schedule.alphasCumprod[t], Double(abar[t]), accuracy: 1e-6 * Double(abar[t]), "t \(t)")
        }
        XCTAssertLessThan(relativeDifference(pipe.latents(try io.tensor("image")), try io.tensor("latent")), 1e-4)
    }

    func testPerClassErrorsMatchDiffusers() throws {
        let pipe = try DiTPipeline.load(from: fixtureURL("pipeline"))
        let io = try SafetensorsFile(url: fixtureURL("pipeline/io.safetensors"))
        let x0 = pipe.latents(try io.tensor("image"))
        let ts = try io.tensor("timesteps").scalars.map { Int($0) }, expected = try io.tensor("errors")
        var options = ClassifierOptions()
        options.batchSize = 3  // batches that straddle classes; results do not depend on it
        let classifier = try Classifier(model: pipe.transformer, schedule: pipe.schedule, conditions: pipe.classIDs,
                                        strategy: FixedTimesteps(sampler: .explicit(ts)), options: options,
                                        noiseFile: FileNoise(eps: try io.tensor("eps"), path: "io.safetensors"))
        let result = try classifier.classify(x0, imageIndex: 0)
        XCTAssertEqual(result.calls, 16)
        XCTAssertEqual(result.probeTimesteps, ts)
        var means = [Double](repeating: 0, count: 4)
        for k in 0..<4 {
            for j in 0..<ts.count {
                let want = Double(expected.scalars[k * ts.count + j])
                guard let got = result.probeErrors[k][j] else { XCTFail("class \(k) not scored at t \(ts[j])"); continue }
                XCTAssertEqual(got, want, accuracy: 1e-4 * abs(want), "class \(k), t \(ts[j])")
                means[k] += want / Double(ts.count)
            }
        }
        XCTAssertEqual(result.prediction, means.indices.min { means[$0] < means[$1] }!)
    }

    /// The pipeline as a `ClassifierModel`: a robustness run's classifier (and RDC, with the
    /// null class as its unconditional model) differentiates through the transformer and the VAE.
    func testClassifierModelPlugsIntoTheDifferentiableClassifier() throws {
        let pipe = try DiTPipeline.load(from: fixtureURL("pipeline"))
        let model = pipe.classifierModel()
        XCTAssertEqual(model.conditions, [0, 1, 2, 3])
        XCTAssertEqual(model.unconditional, pipe.transformer.nullClass)
        var lm = LikelihoodMaximization()
        lm.steps = 1
        let head = DiffusionLogits(model: model.predictor, schedule: model.schedule, conditions: model.conditions, timesteps: [200, 700],
                                   batchSize: 4, encoder: model.encoder)
        let rdc = RobustDiffusionClassifier(head: head, lm: lm, unconditional: model.unconditional!)
        var g = RandomGenerator(seed: 2)
        let x = Tensor.uniform([1, 3, pipe.imageSize, pipe.imageSize], low: 0.1, high: 0.9, generator: &g)
        for classifier in [head, rdc] as [DifferentiableClassifier] {
            let (value, grads) = valueAndGradient(at: [x]) { classifier.logits($0[0], randomness: 5).sliced(axis: 1, 0..<1).sum() }
            XCTAssertTrue(value.item.isFinite)
            XCTAssertEqual(grads[0].shape, x.shape)
            XCTAssertGreaterThan(grads[0].abs().sum().item, 0)
        }
    }

    /// A copy of the fixture pipeline (parts linked) whose model_index.json is `index`.
    func pipelineFolder(index: [String: Any]?, scheduler: [String: Any]? = nil) throws -> URL {
        let dir = try temporaryDirectory("ditpipe")
        let fm = FileManager.default
        for part in ["transformer", "vae"] {
            try fm.createSymbolicLink(at: dir.appendingPathComponent(part), withDestinationURL: fixtureURL("pipeline/\(part)"))
        }
        try fm.createDirectory(at: dir.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
        let schedulerURL = dir.appendingPathComponent("scheduler/scheduler_config.json")
        if let scheduler {
            try JSONSerialization.data(withJSONObject: scheduler).write(to: schedulerURL)
        } else {
            try fm.copyItem(at: fixtureURL("pipeline/scheduler/scheduler_config.json"), to: schedulerURL)
        }
        if let index { try JSONSerialization.data(withJSONObject: index).write(to: dir.appendingPathComponent("model_index.json")) }
        return dir
    }

    func fixtureIndex() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("pipeline/model_index.json"))) as! [String: Any]
    }

    func assertLoadFails(_ dir: URL, classNames: [String]? = nil, mentioning words: [String],
                         file: StaticString = #filePath, line: UInt = #line) {
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try DiTPipeline.load(from: dir, classNames: classNames), file: file, line: line) { error in
            for w in words { XCTAssertTrue("\(error)".contains(w), "'\(w)' not in: \(error)", file: file, line: line) }
        }
    }

    // The same classifier parity with every op on the reference backend (plain loops).
    func testPerClassErrorsMatchDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testPerClassErrorsMatchDiffusers() }
    }

    func testId2labelProblemsAreNamed() throws {
        var index = try fixtureIndex()
        index["id2label"] = ["0": "a", "2": "c"]
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["model_index.json", "lacks 2 of the 4", "1, 3"])
        index["id2label"] = ["0": "a", "1": "b", "2": "c", "3": "d", "4": "e"]
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["model_index.json", "outside 0..<4", "4"])
        index["id2label"] = ["0": "a", "1": "b", "2": "c", "three": "d"]
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["model_index.json", "'three'"])
        index["id2label"] = ["0": "a", "1": "b", "2": "c", "3": 4]
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["'3'", "not a string"])
        index.removeValue(forKey: "id2label")
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["model_index.json", "no id2label"])
        // Names given instead of id2label: accepted when one per class.
        let dir = try pipelineFolder(index: index)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(try DiTPipeline.load(from: dir, classNames: ["w", "x", "y", "z"]).classNames, ["w", "x", "y", "z"])
        assertLoadFails(try pipelineFolder(index: index), classNames: ["w"], mentioning: ["num_embeds_ada_norm is 4", "1 class names"])
    }

    func testFolderAndSchedulerProblemsAreNamed() throws {
        assertLoadFails(try pipelineFolder(index: nil), mentioning: ["model_index.json", "missing"])
        var index = try fixtureIndex()
        index["_class_name"] = "StableDiffusionPipeline"
        assertLoadFails(try pipelineFolder(index: index), mentioning: ["model_index.json", "StableDiffusionPipeline"])
        let scheduler = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("pipeline/scheduler/scheduler_config.json"))) as! [String: Any]
        var trained = scheduler
        trained["trained_betas"] = [0.1, 0.2]
        assertLoadFails(try pipelineFolder(index: try fixtureIndex(), scheduler: trained), mentioning: ["scheduler_config.json", "trained_betas"])
        var rescaled = scheduler
        rescaled["rescale_betas_zero_snr"] = true
        assertLoadFails(try pipelineFolder(index: try fixtureIndex(), scheduler: rescaled), mentioning: ["rescale_betas_zero_snr"])
        var other = scheduler
        other["_class_name"] = "FlowMatchEulerDiscreteScheduler"
        assertLoadFails(try pipelineFolder(index: try fixtureIndex(), scheduler: other), mentioning: ["FlowMatchEulerDiscreteScheduler"])
        // A DPMSolver config with the same betas gives the same schedule.
        var dpm = scheduler
        dpm["_class_name"] = "DPMSolverMultistepScheduler"
        dpm["solver_order"] = 2
        let dir = try pipelineFolder(index: try fixtureIndex(), scheduler: dpm)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(try DiTPipeline.load(from: dir).schedule.alphasCumprod, try DiTPipeline.load(from: fixtureURL("pipeline")).schedule.alphasCumprod)
    }

    func testMismatchedPartsAreNamed() throws {
        let pipe = try DiTPipeline.load(from: fixtureURL("pipeline"))
        var c = pipe.transformer.config
        c.inChannels = 3; c.outChannels = 6
        XCTAssertThrowsError(try DiTPipeline(transformer: DiTTransformer2DModel(config: c), vae: pipe.vae, schedule: pipe.schedule,
                                             classNames: pipe.classNames, folder: pipe.folder)) {
            XCTAssertTrue("\($0)".contains("in_channels 3") && "\($0)".contains("latent_channels 4"), "\($0)")
        }
        c = pipe.transformer.config
        c.outChannels = 5
        XCTAssertThrowsError(try DiTPipeline(transformer: DiTTransformer2DModel(config: c), vae: pipe.vae, schedule: pipe.schedule,
                                             classNames: pipe.classNames, folder: pipe.folder)) {
            XCTAssertTrue("\($0)".contains("out_channels 5"), "\($0)")
        }
    }
}
