import Diffusion
import EDM
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// EDM's training losses and Heun sampler against NVlabs/edm's own code
/// (tools/make_edm_training_fixtures.py), and EDM training runs that stop and resume.
final class EDMTrainingTests: XCTestCase {
    let fixtures = { try! SafetensorsFile(url: fixtureURL("training.safetensors")) }()

    func testLossesMatchEDMsLossesForEachPreconditioning() throws {
        for name in ["ddpmpp_edm", "skip_vp", "ncsnpp_ve"] {
            let model = try EDMModel.load(from: fixtureURL(name))
            let objective = EDMObjective(model: model)
            let (sigma, weight) = objective.noiseLevels(uniforms: try fixtures.tensor("\(name).uniform").scalars,
                                                        normals: try fixtures.tensor("\(name).normal").scalars)
            let labels = try fixtures.tensor("\(name).labels").scalars.map { Int($0) }
            let loss = objective.loss(images: try fixtures.tensor("\(name).images"), labels: labels, sigma: sigma, weight: weight,
                                      noise: try fixtures.tensor("\(name).noise"), dropout: nil)
            let expected = try fixtures.tensor("\(name).loss").scalars[0]
            XCTAssertEqual(Double(loss.item), Double(expected), accuracy: 1e-4 * Double(abs(expected)), name)
            loss.backward()
            let grad = model.namedParameters().first { $0.key == "model.map_layer0.weight" }!.tensor.grad!
            XCTAssertLessThan(maxRelativeError(grad, try fixtures.tensor("\(name).grad")), 1e-3, name)
        }
    }

    func testHeunSamplerMatchesEDMsSampler() throws {
        for (key, name) in [("edm", "ddpmpp_edm"), ("ve", "ncsnpp_ve")] {
            let model = try EDMModel.load(from: fixtureURL(name))
            let latents = try fixtures.tensor("sampler.\(key).latents")
            let n = latents.shape[0]
            let labels = model.labelDim > 0 ? model.oneHot((0..<n).map { $0 % model.labelDim }) : nil
            var sampler = EDMSampler()
            sampler.steps = 4
            var g = RandomGenerator(seed: 0)
            var calls = 0
            let x = sampler.sample(model: model, latents: latents, classLabels: labels, generator: &g) { _ in calls += 1 }
            XCTAssertEqual(calls, 4)
            XCTAssertLessThan(maxRelativeError(x, try fixtures.tensor("sampler.\(key).output")), 1e-4, key)
        }
        // VE's range starts at 0.02, which replaces EDM's default 0.002.
        let ve = try EDMModel.load(from: fixtureURL("ncsnpp_ve"))
        var sampler = EDMSampler()
        sampler.steps = 4
        let t = sampler.noiseLevels(for: ve)
        XCTAssertEqual(t.count, 5)
        XCTAssertEqual(t[0], 80, accuracy: 1e-9)
        XCTAssertEqual(t[3], 0.02, accuracy: 1e-12)
        XCTAssertEqual(t[4], 0)
    }

    func testChangingSigmaDataChangesTheLoss() throws {
        // sigma_data enters the weight and D's coefficients: the fixture must see it.
        var config = try EDMConfig.load(fixtureURL("ddpmpp_edm").appendingPathComponent("config.json"))
        config.sigmaData = 0.6
        let model = EDMModel(config: config)
        try model.loadWeights(from: SafetensorsFile(url: fixtureURL("ddpmpp_edm").appendingPathComponent("model.safetensors")))
        model.eval()
        let objective = EDMObjective(model: model)
        let name = "ddpmpp_edm"
        let (sigma, weight) = objective.noiseLevels(uniforms: try fixtures.tensor("\(name).uniform").scalars,
                                                    normals: try fixtures.tensor("\(name).normal").scalars)
        let loss = objective.loss(images: try fixtures.tensor("\(name).images"),
                                  labels: try fixtures.tensor("\(name).labels").scalars.map { Int($0) },
                                  sigma: sigma, weight: weight, noise: try fixtures.tensor("\(name).noise"), dropout: nil)
        let expected = try fixtures.tensor("\(name).loss").scalars[0]
        XCTAssertGreaterThan(abs(Double(loss.item) - Double(expected)), 1e-3 * Double(abs(expected)))
    }

    struct Images: TrainingData {
        let images: Tensor, labels: [Float]
        init(count: Int, size: Int, classes: Int) {
            var g = RandomGenerator(seed: 11)
            images = Tensor.uniform([count, 1, size, size], low: -1, high: 1, generator: &g)
            labels = (0..<count).map { Float($0 % classes) }
        }
        var count: Int { labels.count }
        func batch(_ indices: [Int]) -> (images: Tensor, labels: Tensor) {
            (images.gatherRows(indices), Tensor(shape: [indices.count], indices.map { labels[$0] }))
        }
    }

    func tinyConfig() -> EDMConfig {
        var c = EDMConfig.small(imageSize: 8, channels: 1, classes: 3)
        c.modelChannels = 8
        c.numBlocks = 1
        c.dropout = 0.1  // exercised: its draws must resume exactly too
        c.labelDropout = 0.3
        return c
    }

    func trainer(steps: Int, data: Images) -> DiffusionTrainer {
        var o = TrainingOptions()
        o.steps = steps; o.batchSize = 4; o.learningRate = 5e-3; o.warmupSteps = 2; o.numClasses = 3
        o.labelDropout = 0.3; o.checkpointEvery = 1000; o.seed = 5
        return DiffusionTrainer(objective: EDMObjective(model: EDMModel(config: tinyConfig(), seed: 2)), options: o, data: data)
    }

    func testStoppedAndResumedEDMRunEndsWhereAnUninterruptedRunEndsAndLoads() throws {
        let data = Images(count: 10, size: 8, classes: 3)
        let fm = FileManager.default
        let dirA = fm.temporaryDirectory.appendingPathComponent("edmA-\(UUID().uuidString)")
        let dirB = fm.temporaryDirectory.appendingPathComponent("edmB-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: dirA); try? fm.removeItem(at: dirB) }
        try trainer(steps: 6, data: data).run(outputDirectory: dirA, progress: { _ in })
        var stopAt = 3
        for _ in 0..<2 {
            let t = trainer(steps: 6, data: data)
            _ = try t.resumeIfPossible(from: dirB)
            let limit = stopAt
            try t.run(outputDirectory: dirB, shouldStop: { t.step >= limit }, progress: { _ in })
            stopAt += 3
        }
        let a = try SafetensorsFile(url: dirA.appendingPathComponent(EDMModel.weightsName)).tensors()
        let b = try SafetensorsFile(url: dirB.appendingPathComponent(EDMModel.weightsName)).tensors()
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, v) in a { XCTAssertEqual(v.scalars, b[k]!.scalars, k) }
        // The exported folder is an EDM folder: strict load, the config as trained.
        let loaded = try EDMModel.load(from: dirA)
        XCTAssertEqual(loaded.config, tinyConfig())
        let initial = EDMModel(config: tinyConfig(), seed: 2).edmStateDict()
        XCTAssertTrue(a.contains { k, v in initial[k]!.scalars != v.scalars }, "training changed no weight")
    }

    func testTrainingLowersTheLossOnAFixedBatch() throws {
        // Many steps over two images: the loss at fixed noise levels and noise must fall well
        // below its start (the training loss itself is too noisy: its sigma is drawn per step).
        let data = Images(count: 2, size: 8, classes: 2)
        var o = TrainingOptions()
        o.steps = 150; o.batchSize = 2; o.learningRate = 1e-2; o.warmupSteps = 1; o.numClasses = 2; o.labelDropout = 0
        o.emaDecay = 0; o.seed = 1
        var config = tinyConfig(); config.labelDim = 2; config.dropout = 0; config.labelDropout = 0
        let objective = EDMObjective(model: EDMModel(config: config, seed: 2))
        let t = DiffusionTrainer(objective: objective, options: o, data: data)
        let (images, labels) = data.batch([0, 1])
        var g = RandomGenerator(seed: 3)
        let noise = Tensor.randn(images.shape, generator: &g)
        func heldLoss() -> Double {
            var total = 0.0
            for s: Float in [0.2, 0.5, 1.0] {
                let (sigma, weight) = objective.noiseLevels(uniforms: [0, 0], normals: [(log(s) + 1.2) / 1.2, (log(s) + 1.2) / 1.2])
                total += Double(objective.loss(images: images, labels: labels.scalars.map { Int($0) }, sigma: sigma, weight: weight,
                                               noise: noise, dropout: nil).item)
            }
            return total
        }
        let before = heldLoss()
        for _ in 0..<o.steps { t.trainStep() }
        let after = heldLoss()
        XCTAssertLessThan(after, 0.6 * before, "loss \(before) -> \(after)")
    }
}
