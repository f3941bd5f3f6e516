import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// U-Net cases: training throughput (forward + backward + AdamW, batch 128) and inference
/// forward passes of the shipped Fashion-MNIST architecture. The PyTorch side builds diffusers'
/// UNet2DModel from the same config.json.
public enum ModelBenchmarks {
    public static func cases(quick: Bool) -> [BenchmarkCase] {
        let config = UNet2DConfig.smallClassConditional(imageSize: 28, channels: 1, classes: 10)
        let json = String(decoding: (try? JSONEncoder().encode(config)) ?? Data(), as: UTF8.self)
        let trainBatch = quick ? 32 : 128, inferBatch = quick ? 50 : 250
        let flops = UNet2DModel(config: config).flopsPerImage
        func inputs(_ n: Int) -> (Tensor, [Float], Tensor) {
            var g = RandomGenerator(seed: 12)
            let x = Tensor.randn([n, 1, 28, 28], generator: &g)
            let t = (0..<n).map { Float(($0 * 37) % 1000) }
            let labels = Tensor(shape: [n], (0..<n).map { Float($0 % 11) })
            return (x, t, labels)
        }
        return [
            BenchmarkCase(name: "unet_train_step_b\(trainBatch)", flops: 3 * flops * Double(trainBatch),
                          spec: ["op": .string("unet_train"), "batch": .int(trainBatch), "config": .string(json)]) {
                let model = UNet2DModel(config: config, seed: 1)
                let optimizer = AdamW(parameters: model.parameters, learningRate: 1e-4)
                let (x, t, labels) = inputs(trainBatch)
                let target = Tensor.zeros(x.shape)
                return {
                    let loss = (model(x, timesteps: t, classLabels: labels) - target).square().mean()
                    loss.backward()
                    optimizer.update()
                    model.zeroGrad()
                }
            },
            BenchmarkCase(name: "unet_forward_b\(inferBatch)", flops: flops * Double(inferBatch),
                          spec: ["op": .string("unet_forward"), "batch": .int(inferBatch), "config": .string(json)]) {
                let model = UNet2DModel(config: config, seed: 1)
                let (x, t, labels) = inputs(inferBatch)
                return { _ = Autograd.noGrad { model(x, timesteps: t, classLabels: labels) } }
            },
        ]
    }
}
