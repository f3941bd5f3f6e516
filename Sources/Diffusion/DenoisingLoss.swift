import Foundation
import NeuralNetworks
import TensorEngine

/// The DDPM training objective measured on held-out data: mean squared error to the schedule's
/// target, at timesteps and noise drawn from `seed` (the same for every model, so losses of two
/// checkpoints compare on identical draws), conditioned on the true labels.
public func denoisingLoss(model: ConditionalNoisePredictor, schedule: NoiseSchedule, data: TrainingData,
                          count: Int, batchSize: Int = 250, seed: UInt64 = 0) -> Double {
    Autograd.noGrad {
        var total = 0.0, seen = 0
        let n = Swift.min(count, data.count)
        var start = 0
        while start < n {
            let indices = Array(start..<Swift.min(n, start + batchSize))
            let (x0, labels) = data.batch(indices)
            var g = RandomGenerator(seed: seed, stream: 0x4C4F5353 + UInt64(start) << 20)
            let t = indices.map { _ in g.nextInt(upperBound: schedule.numTrainTimesteps) }
            let noise = Tensor.randn(x0.shape, generator: &g)
            let xt = schedule.addNoise(x0, noise: noise, timesteps: t)
            let out = model.predict(xt, timesteps: t.map(Float.init), conditions: labels)
            let err = (out - schedule.target(x0: x0, noise: noise, timesteps: t)).square().sum().item
            total += Double(err)
            seen += x0.count
            start += batchSize
        }
        return total / Double(Swift.max(seen, 1))
    }
}
