import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// U-Net cases: training throughput (forward + backward + AdamW, batch 128), inference forward
/// passes, and one gradient against one Hessian-vector product with respect to the input (the
/// cost of exact gradients through likelihood maximization: frozen parameters, a denoising-style
/// loss; the table's peak column is each case's tensor memory) of the shipped Fashion-MNIST
/// architecture. The PyTorch side builds diffusers' UNet2DModel from the same config.json (for
/// the Hessian-vector product with diffusers' plain attention processor: PyTorch's fused CPU
/// attention has no double backward).
public enum ModelBenchmarks {
    public static func cases(quick: Bool) -> [BenchmarkCase] {
        let config = UNet2DConfig.smallClassConditional(imageSize: 28, channels: 1, classes: 10)
        let json = String(decoding: (try? JSONEncoder().encode(config)) ?? Data(), as: UTF8.self)
        let trainBatch = quick ? 32 : 128, inferBatch = quick ? 50 : 250, hvpBatch = quick ? 2 : 8
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
            BenchmarkCase(name: "unet_input_gradient_b\(hvpBatch)", flops: 3 * flops * Double(hvpBatch),
                          spec: ["op": .string("unet_input_grad"), "batch": .int(hvpBatch), "config": .string(json)]) {
                let model = UNet2DModel(config: config, seed: 1)
                for p in model.parameters { p.requiresGrad = false }
                let (x0, t, labels) = inputs(hvpBatch)
                let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
                return { _ = try! gradient(of: model(x, timesteps: t, classLabels: labels).square().mean(), wrt: [x]) }
            },
            BenchmarkCase(name: "unet_input_hvp_b\(hvpBatch)", flops: nil,
                          spec: ["op": .string("unet_input_hvp"), "batch": .int(hvpBatch), "config": .string(json)]) {
                let model = UNet2DModel(config: config, seed: 1)
                for p in model.parameters { p.requiresGrad = false }
                let (x0, t, labels) = inputs(hvpBatch)
                let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
                var g = RandomGenerator(seed: 13)
                let v = Tensor.randn(x.shape, generator: &g)
                return {
                    let loss = model(x, timesteps: t, classLabels: labels).square().mean()
                    _ = try! hessianVectorProduct(of: loss, wrt: [x], along: [v])
                }
            },
        ] + perCallCases(config: config, json: json, flops: flops, inputs: inputs)
    }

    /// Forward passes at the batch sizes the classifiers send (8 and 32 items per U-Net call), in
    /// float32 and, where the CPU has AVX512_BF16, with `--compute-dtype bf16` products against
    /// PyTorch's CPU autocast to bfloat16 (its matmuls and convolutions in bf16 through oneDNN).
    static func perCallCases(config: UNet2DConfig, json: String, flops: Double,
                             inputs: @escaping (Int) -> (Tensor, [Float], Tensor)) -> [BenchmarkCase] {
        let dtypes: [ComputeDType] = Engine.bfloat16Problem == nil ? [.float32, .bfloat16] : [.float32]
        return dtypes.flatMap { dtype in
            [8, 32].map { batch in
                var spec: [String: BenchmarkValue] = ["op": .string("unet_forward"), "batch": .int(batch), "config": .string(json)]
                if dtype == .bfloat16 { spec["autocast"] = .string("bf16") }
                return BenchmarkCase(name: "unet_call_\(dtype.rawValue)_b\(batch)", flops: flops * Double(batch), spec: spec) {
                    let model = UNet2DModel(config: config, seed: 1)
                    let (x, t, labels) = inputs(batch)
                    return {
                        let saved = Engine.computeDType
                        try? Engine.setComputeDType(dtype)
                        _ = Autograd.noGrad { model(x, timesteps: t, classLabels: labels) }
                        try? Engine.setComputeDType(saved)
                    }
                }
            }
        }
    }
}
