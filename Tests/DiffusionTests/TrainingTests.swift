import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// A few random "images" with labels, for training tests.
struct RandomImages: TrainingData {
    let images: Tensor
    let labels: [Float]
    init(count: Int, size: Int, classes: Int, seed: UInt64) {
        var g = RandomGenerator(seed: seed)
        images = Tensor.uniform([count, 1, size, size], low: -1, high: 1, generator: &g)
        labels = (0..<count).map { Float($0 % classes) }
    }
    var count: Int { labels.count }
    func batch(_ indices: [Int]) -> (images: Tensor, labels: Tensor) {
        return (images.gatherRows(indices), Tensor(shape: [indices.count], indices.map { labels[$0] }))
    }
}

final class TrainingTests: XCTestCase {
    func tinyConfig() -> UNet2DConfig {
        .tiny(classes: 3)
    }

    func options(steps: Int) -> TrainingOptions {
        var o = TrainingOptions()
        o.steps = steps; o.batchSize = 4; o.learningRate = 1e-2; o.warmupSteps = 2; o.numClasses = 3
        o.labelDropout = 0.3; o.checkpointEvery = 1000; o.seed = 7
        return o
    }

    func trainer(steps: Int, data: RandomImages) -> DiffusionTrainer {
        DiffusionTrainer(model: UNet2DModel(config: tinyConfig(), seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                         options: options(steps: steps), data: data)
    }

    func testStoppedAndResumedRunEndsWhereAnUninterruptedRunEnds() throws {
        let data = RandomImages(count: 10, size: 8, classes: 3, seed: 1)
        let straight = trainer(steps: 6, data: data)
        let dirA = FileManager.default.temporaryDirectory.appendingPathComponent("trainA-\(UUID().uuidString)")
        let dirB = FileManager.default.temporaryDirectory.appendingPathComponent("trainB-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dirA); try? FileManager.default.removeItem(at: dirB) }
        try straight.run(outputDirectory: dirA, progress: { _ in })

        // Stop after 2 steps, resume in a new process-like trainer, stop again after 4, resume to 6.
        var stopAt = 2
        for _ in 0..<3 {
            let t = trainer(steps: 6, data: data)
            _ = try t.resumeIfPossible(from: dirB)
            let limit = stopAt
            try t.run(outputDirectory: dirB, shouldStop: { t.step >= limit }, progress: { _ in })
            stopAt += 2
        }
        let a = try SafetensorsFile(url: dirA.appendingPathComponent("diffusion_pytorch_model.safetensors")).tensors()
        let b = try SafetensorsFile(url: dirB.appendingPathComponent("diffusion_pytorch_model.safetensors")).tensors()
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, v) in a { XCTAssertEqual(v.scalars, b[k]!.scalars, k) }
        let lossA = try String(contentsOf: dirA.appendingPathComponent("loss.csv"), encoding: .utf8)
        let lossB = try String(contentsOf: dirB.appendingPathComponent("loss.csv"), encoding: .utf8)
        XCTAssertEqual(lossA, lossB)
        // The exported folder loads as a model (diffusers layout with the scheduler config).
        XCTAssertNoThrow(try UNet2DModel.load(from: dirB))
        XCTAssertNoThrow(try SchedulerConfig.load(dirB.appendingPathComponent("scheduler/scheduler_config.json")))
    }

    func testTrainingLowersTheLossAndSameSeedRepeats() {
        let data = RandomImages(count: 8, size: 8, classes: 3, seed: 2)
        let t1 = trainer(steps: 30, data: data), t2 = trainer(steps: 30, data: data)
        let losses1 = (0..<30).map { _ in t1.trainStep() }
        let losses2 = (0..<30).map { _ in t2.trainStep() }
        XCTAssertEqual(losses1, losses2)
        let early = losses1.prefix(5).reduce(0, +) / 5, late = losses1.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(late, early)
    }

    func testResumeWithOtherSettingsIsRefused() throws {
        let data = RandomImages(count: 6, size: 8, classes: 3, seed: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainC-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try trainer(steps: 1, data: data).run(outputDirectory: dir, progress: { _ in })
        var other = options(steps: 5)
        other.learningRate = 0.5
        let t = DiffusionTrainer(model: UNet2DModel(config: tinyConfig(), seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                                 options: other, data: data)
        XCTAssertThrowsError(try t.resumeIfPossible(from: dir)) { e in XCTAssertTrue("\(e)".contains("state.json"), "\(e)") }
    }

    func testCosineScheduleWarmsUpThenDecaysToZero() {
        var o = options(steps: 102)
        o.warmupSteps = 2
        XCTAssertEqual(o.learningRate(atStep: 50), o.learningRate)   // constant: runs made before the option
        o.learningRateSchedule = .cosine
        XCTAssertEqual(o.learningRate(atStep: 0), o.learningRate / 2, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(atStep: 2), o.learningRate, accuracy: 1e-9)
        XCTAssertEqual(o.learningRate(atStep: 52), o.learningRate / 2, accuracy: 1e-6)
        XCTAssertEqual(o.learningRate(atStep: 102), 0, accuracy: 1e-9)
        // Under cosine the step count fixes the rates, so a resume with other steps is another run.
        var longer = o
        longer.steps = 200
        let data = RandomImages(count: 6, size: 8, classes: 3, seed: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainD-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var short = o
        short.steps = 1
        XCTAssertNoThrow(try DiffusionTrainer(model: UNet2DModel(config: tinyConfig(), seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                                              options: short, data: data).run(outputDirectory: dir, progress: { _ in }))
        let t = DiffusionTrainer(model: UNet2DModel(config: tinyConfig(), seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                                 options: longer, data: data)
        XCTAssertThrowsError(try t.resumeIfPossible(from: dir))
    }

    func testInitFromStartsFromTheFoldersWeightsAndRefusesAnotherConfig() throws {
        let data = RandomImages(count: 6, size: 8, classes: 3, seed: 4)
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("trainE-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: source) }
        let donor = UNet2DModel(config: tinyConfig(), seed: 99)
        try donor.save(to: source)
        var o = options(steps: 3)
        o.initFrom = source.path
        let t = DiffusionTrainer(model: UNet2DModel(config: tinyConfig(), seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                                 options: o, data: data)
        try t.initializeFromFolder()
        let expected = donor.stateDict()
        for (k, p) in t.module.namedParameters() { XCTAssertEqual(p.scalars, expected[k]!.scalars, k) }
        // The exported EMA model right away is the donor (the average starts at its weights).
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trainF-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try t.exportEMAModel(to: out)
        let exported = try UNet2DModel.load(from: out).stateDict()
        for (k, v) in expected { XCTAssertEqual(exported[k]!.scalars, v.scalars, k) }
        var other = tinyConfig()
        other.blockOutChannels = [8, 8]
        let mismatched = DiffusionTrainer(model: UNet2DModel(config: other, seed: 3), schedule: NoiseSchedule(SchedulerConfig()),
                                          options: o, data: data)
        XCTAssertThrowsError(try mismatched.initializeFromFolder()) { e in XCTAssertTrue("\(e)".contains("config"), "\(e)") }
    }

    func testSamplersProduceFiniteImagesInRange() {
        let model = UNet2DModel(config: tinyConfig(), seed: 5)
        for method in [Sampler.Method.ddim, .ddpm] {
            var s = Sampler(model: model, schedule: NoiseSchedule(SchedulerConfig()))
            s.method = method; s.steps = 5; s.guidance = 2; s.nullClass = 3
            let x = s.sample(classes: [0, 1, 2], channels: 1, height: 8, width: 8, seed: 1)
            XCTAssertEqual(x.shape, [3, 1, 8, 8])
            XCTAssertTrue(x.scalars.allSatisfy { $0.isFinite && $0 >= -1 && $0 <= 1 })
            let again = s.sample(classes: [0, 1, 2], channels: 1, height: 8, width: 8, seed: 1)
            XCTAssertEqual(x.scalars, again.scalars)
        }
    }
}
