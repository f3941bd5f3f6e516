import Foundation
import XCTest
import Diffusion
import TensorEngine

/// Fixtures written by tools/make_diffusion_fixtures.py from diffusers.
func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

final class ScheduleTests: XCTestCase {
    struct ScheduleFixture: Decodable {
        struct Config: Decodable {
            let beta_schedule: String, beta_start: Double, beta_end: Double, num_train_timesteps: Int
        }
        let config: Config
        let timesteps: [Int]
        let betas: [Double]
        let alphas_cumprod: [Double]
    }

    func testSchedulesMatchDiffusers() throws {
        let data = try Data(contentsOf: fixtureURL("schedules.json"))
        let fixtures = try JSONDecoder().decode([String: ScheduleFixture].self, from: data)
        XCTAssertEqual(Set(fixtures.keys), ["linear", "scaled_linear", "squaredcos_cap_v2"])
        for (name, f) in fixtures {
            let s = NoiseSchedule(SchedulerConfig(numTrainTimesteps: f.config.num_train_timesteps, betaStart: f.config.beta_start,
                                                  betaEnd: f.config.beta_end, betaSchedule: f.config.beta_schedule))
            for (i, t) in f.timesteps.enumerated() {
                // diffusers works in float32: agree to float32 precision.
                XCTAssertEqual(s.betas[t], f.betas[i], accuracy: 2e-6 * f.betas[i] + 1e-9, "\(name) beta[\(t)]")
                XCTAssertEqual(s.alphasCumprod[t], f.alphas_cumprod[i], accuracy: 1e-5 * f.alphas_cumprod[i] + 1e-9,
                               "\(name) alphas_cumprod[\(t)]")
            }
        }
    }

    func testPredictionConversionsInvertEachOther() {
        var g = RandomGenerator(seed: 4)
        let x0 = Tensor.randn([3, 1, 4, 4], generator: &g), eps = Tensor.randn([3, 1, 4, 4], generator: &g)
        let t = [10, 500, 990]
        for type in ["epsilon", "v_prediction", "sample"] {
            let s = NoiseSchedule(SchedulerConfig(predictionType: type))
            let xt = s.addNoise(x0, noise: eps, timesteps: t)
            let target = s.target(x0: x0, noise: eps, timesteps: t)
            assertTensorsClose(s.epsilon(fromOutput: target, sample: xt, timesteps: t), eps, tolerance: 2e-4, type)
            assertTensorsClose(s.sample(fromOutput: target, sample: xt, timesteps: t), x0, tolerance: 2e-3, type)
        }
    }

    func testSchedulerConfigRoundTripAndValidation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("scheduler_config.json")
        let c = SchedulerConfig(betaSchedule: "squaredcos_cap_v2", predictionType: "v_prediction")
        try c.write(to: url)
        XCTAssertEqual(try SchedulerConfig.load(url), c)
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.contains("\"beta_schedule\" : \"squaredcos_cap_v2\""))
        XCTAssertTrue(text.contains("\"_class_name\" : \"DDPMScheduler\""))
        try Data("{\"beta_schedule\": \"sigmoid\"}".utf8).write(to: url)
        XCTAssertThrowsError(try SchedulerConfig.load(url)) { error in
            XCTAssertTrue("\(error)".contains("scheduler_config.json"), "\(error)")
            XCTAssertTrue("\(error)".contains("sigmoid"), "\(error)")
        }
        try Data("not json".utf8).write(to: url)
        XCTAssertThrowsError(try SchedulerConfig.load(url))
    }
}

func assertTensorsClose(_ a: Tensor, _ b: Tensor, tolerance: Float, _ message: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
    var worst: Float = 0
    let pa = a.scalars, pb = b.scalars
    for i in 0..<Swift.min(a.count, b.count) {
        worst = Swift.max(worst, Swift.abs(pa[i] - pb[i]) / (1 + Swift.abs(pb[i])))
    }
    XCTAssertLessThanOrEqual(worst, tolerance, "max relative error \(worst) \(message)", file: file, line: line)

    /// trained_betas and zero-SNR rescaling would change the betas; they are refused, naming the
    /// field and file, rather than read as the plain schedule. Null and false are fine.
    func testSchedulerConfigRefusesTrainedBetasAndZeroSNRRescaling() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("scheduler_config.json")
        func load(_ extra: String) throws -> SchedulerConfig {
            try Data("{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"linear\"\(extra)}".utf8).write(to: url)
            return try SchedulerConfig.load(url)
        }
        XCTAssertEqual(try load(", \"trained_betas\": null, \"rescale_betas_zero_snr\": false").numTrainTimesteps, 1000)
        XCTAssertThrowsError(try load(", \"trained_betas\": [0.1, 0.2]")) { e in
            XCTAssertTrue("\(e)".contains(url.path) && "\(e)".contains("trained_betas is set"), "\(e)")
        }
        XCTAssertThrowsError(try load(", \"rescale_betas_zero_snr\": true")) { e in
            XCTAssertTrue("\(e)".contains(url.path) && "\(e)".contains("rescale_betas_zero_snr = true"), "\(e)")
        }
    }
}
