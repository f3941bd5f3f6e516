import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// A tiny random class-conditional U-Net (1 channel, 8x8, `classes` + null class).
func tinyModel(classes: Int = 4, seed: UInt64 = 1) -> UNet2DModel {
    UNet2DModel(config: .tiny(classes: classes), seed: seed)
}

/// Random "images" in [-1, 1], [1, 1, 8, 8] each.
func randomImages(_ n: Int, seed: UInt64 = 7) -> [Tensor] {
    var g = RandomGenerator(seed: seed)
    return (0..<n).map { _ in Tensor.uniform([1, 1, 8, 8], low: -1, high: 1, generator: &g) }
}

func schedule(_ prediction: String = "epsilon", T: Int = 1000) -> NoiseSchedule {
    NoiseSchedule(SchedulerConfig(numTrainTimesteps: T, predictionType: prediction))
}

/// Records every row it is given and answers `respond` (default: zeros).
final class SpyPredictor: ConditionalNoisePredictor {
    struct Call { let sample: [Float]; let timestep: Float; let condition: Float }
    var calls: [Call] = []
    var respond: ((Tensor, [Float], Tensor?) -> Tensor)?

    func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        let n = sample.shape[0], per = sample.count / n
        let s = sample.scalars, c = conditions!.scalars
        for i in 0..<n { calls.append(Call(sample: Array(s[(i * per)..<((i + 1) * per)]), timestep: timesteps[i], condition: c[i])) }
        return respond?(sample, timesteps, conditions) ?? Tensor.zeros(sample.shape)
    }
}

func temporaryDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Whether `error` is about `setting` (names it in its text).
func names(_ error: Error, _ setting: Setting) -> Bool {
    (error as? SettingNamingError)?.text.settings.contains(setting) ?? false
}
