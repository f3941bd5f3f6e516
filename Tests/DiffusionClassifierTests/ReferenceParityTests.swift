import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Our classifier against tools/reference_classifier.py (the public code's algorithm in PyTorch,
/// with a diffusers UNet2DModel): same model (Tests/DiffusionTests/Fixtures/unet_a, 4 classes +
/// null), same image and eps rows (Fixtures/reference/inputs.safetensors, used as `--noise FILE`),
/// diffusers' default DDPM schedule. Timesteps and survivors must match exactly, per-timestep and
/// mean errors within 1e-4 relative.
final class ReferenceParityTests: XCTestCase {
    struct Reference: Decodable {
        let classes: [Int]
        let grid: [Int]
        let timesteps: [[Int]]
        let errors: [[Double]]
        let meanErrors: [Double?]
        let survivors: [Int]
        let prediction: Int
    }

    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    func reference(_ name: String) throws -> Reference {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(Reference.self, from: try Data(contentsOf: here.appendingPathComponent("Fixtures/reference/\(name)")))
    }

    /// `survivors`: compare them too (`FixedTimesteps` keeps every class; the reference keeps one).
    func check(_ strategy: ClassificationStrategy, against name: String, survivors checkSurvivors: Bool = true) throws {
        let ref = try reference(name)
        let model = try UNet2DModel.load(from: here.deletingLastPathComponent().appendingPathComponent("DiffusionTests/Fixtures/unet_a"))
        let inputs = try SafetensorsFile(url: here.appendingPathComponent("Fixtures/reference/inputs.safetensors"))
        let x0 = try inputs.tensor("x0")
        let noise = FileNoise(eps: try inputs.tensor("eps"), path: "inputs.safetensors")
        let schedule = NoiseSchedule(SchedulerConfig())
        var options = ClassifierOptions()
        options.batchSize = 7
        let classifier = try Classifier(model: model, schedule: schedule, conditions: ref.classes, strategy: strategy, options: options,
                                        noiseFile: noise)
        let scorer = try classifier.makeScorer(x0, imageIndex: 0)
        var generator = RandomGenerator(seed: 0)
        let survivors = try strategy.run(scorer, range: 0..<schedule.numTrainTimesteps, generator: &generator)
        if checkSurvivors { XCTAssertEqual(survivors.map { ref.classes[$0] }, ref.survivors, name) }
        for c in ref.classes.indices {
            XCTAssertEqual(scorer.probeIDs[c].map { scorer.probes[$0].timestep }, ref.timesteps[c], "\(name) class \(c)")
            for (ours, theirs) in zip(scorer.errors[c], ref.errors[c]) {
                XCTAssertEqual(ours, theirs, accuracy: 1e-4 * abs(theirs), "\(name) class \(c)")
            }
            XCTAssertEqual(scorer.meanError(c)!, ref.meanErrors[c]!, accuracy: 1e-4 * abs(ref.meanErrors[c]!), "\(name) class \(c)")
        }
        let result = try classifier.classify(x0, imageIndex: 0)
        XCTAssertEqual(ref.classes[result.prediction], ref.prediction, name)
        for c in ref.classes.indices {
            XCTAssertEqual(result.meanErrors[c]!, ref.meanErrors[c]!, accuracy: 1e-4 * abs(ref.meanErrors[c]!), "\(name) class \(c)")
        }
    }

    func testFixedGridMatchesTheReference() throws {
        try check(FixedTimesteps(sampler: .grid(10)), against: "fixed.json", survivors: false)
        // The public code's one-stage schedule (--to_keep 1 --n_samples 10) is the same computation.
        try check(try StagedElimination(parsing: "1:10"), against: "fixed.json")
    }

    func testStagedScheduleMatchesTheReference() throws {
        try check(try StagedElimination(parsing: "2:4,1:10"), against: "staged.json")
    }

    // The same parity with every op on the reference backend (plain loops).
    func testFixedGridMatchesTheReferenceOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testFixedGridMatchesTheReference() }
    }

    func testStagedScheduleMatchesTheReferenceOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testStagedScheduleMatchesTheReference() }
    }
}
