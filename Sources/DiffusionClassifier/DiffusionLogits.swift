import Diffusion
import NeuralNetworks
import TensorEngine

/// The diffusion classifier as a differentiable function of the image (RDC's classifier head,
/// and the plain diffusion classifier attacked with exact gradients):
///
///     x0 = encode(x) (2x - 1 in pixel space),  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps_{n,t}
///     logits[n, y] = -tau * (1/T) sum_t w(t) * mean_CHW (eps_{n,t} - eps_theta(x_t, t, y))^2
///
/// over a fixed list of T timesteps (e.g. `TimestepGrid.grid(T:maxN:)`), one eps per timestep per
/// image shared by every class (paired, as RDC and the public Diffusion Classifier code do),
/// eps-space errors via `NoiseSchedule.epsilon(fromOutput:)`. p(y|x) = softmax(logits) is RDC's
/// softmax(-L(x, y)) with L the weighted l2 denoising loss (RDC weights EDM noise levels with
/// its training density; here `weighting` is one of `TimestepWeighting` over our DDPM timesteps).
///
/// Everything is recorded, so d logits / d x is exact (for the chosen eps). The N*K*T
/// (image, class, timestep) items go through the U-Net `batchSize` at a time; each chunk's
/// weighted errors are concatenated into one tensor and summed into the logits, so one backward
/// pass reaches every chunk.
///
/// Memory: under `Autograd.noGrad` only one chunk's activations live at a time. With recording
/// on (attacks), every chunk's activations stay alive until `backward()` (which frees them as it
/// goes), so peak memory grows with N*K*T times one item's U-Net activations; chunking then only
/// bounds the per-call workspace. Keep N*K*T small for gradient attacks (few timesteps).
///
/// Randomness: eps_{n,j} (image n of the batch, timestep number j) is draw j of
/// `SeededNoise(seed: randomness, imageIndex: n, ...)`, so it depends on (randomness, n, j) only.
/// With a fixed `noise` source, draw j is used for timestep j of every image and the logits do
/// not depend on `randomness` (`isRandomized` is false).
public final class DiffusionLogits: DifferentiableClassifier {
    public let model: ConditionalNoisePredictor
    public let schedule: NoiseSchedule
    /// The model's condition (class id) for each class 0..<K.
    public let conditions: [Int]
    public let timesteps: [Int]
    /// w(t) for each entry of `timesteps` (from the weighting over 0..<T, mean 1 there).
    public let weights: [Double]
    public let temperature: Double
    public let batchSize: Int
    public let noise: NoiseSource?
    /// Images to the model's clean samples (`PixelSpace`, or a latent model's VAE encoder).
    public let encoder: SampleEncoder

    public init(model: ConditionalNoisePredictor, schedule: NoiseSchedule, conditions: [Int], timesteps: [Int],
                weighting: TimestepWeighting = .uniform, temperature: Double = 1, batchSize: Int = 64,
                noise: NoiseSource? = nil, encoder: SampleEncoder = PixelSpace()) {
        precondition(!conditions.isEmpty && !timesteps.isEmpty && batchSize >= 1, "DiffusionLogits: empty classes or timesteps")
        for t in timesteps { precondition(t >= 0 && t < schedule.numTrainTimesteps, "DiffusionLogits: timestep \(t) outside 0..<\(schedule.numTrainTimesteps)") }
        self.model = model
        self.schedule = schedule
        self.conditions = conditions
        self.timesteps = timesteps
        let w = weighting.weights(schedule: schedule)
        weights = timesteps.map { w[$0] }
        self.temperature = temperature
        self.batchSize = batchSize
        self.noise = noise
        self.encoder = encoder
        freezeParameters(model)
    }

    /// A class-conditional `UNet2DModel` (classes 0..<num_class_embeds - 1; the last id is the
    /// null class) on the public code's evenly spaced grid of `timestepCount` timesteps.
    public convenience init(model: UNet2DModel, schedule: NoiseSchedule, timestepCount: Int,
                            weighting: TimestepWeighting = .uniform, temperature: Double = 1, batchSize: Int = 64,
                            noise: NoiseSource? = nil) {
        guard let embeds = model.config.numClassEmbeds, embeds >= 2 else {
            preconditionFailure("DiffusionLogits: the model is not class-conditional (num_class_embeds unset)")
        }
        self.init(model: model, schedule: schedule, conditions: Array(0..<(embeds - 1)),
                  timesteps: TimestepGrid.grid(T: schedule.numTrainTimesteps, maxN: timestepCount), weighting: weighting,
                  temperature: temperature, batchSize: batchSize, noise: noise)
    }

    public var classCount: Int { conditions.count }
    public var isRandomized: Bool { noise == nil }

    /// eps for every timestep of image `n`, each [1, C, H, W].
    func noiseDraws(image n: Int, shape: [Int], randomness: UInt64) -> [Tensor] {
        let source: NoiseSource = noise ?? SeededNoise(seed: randomness, imageIndex: n, shape: shape)
        return timesteps.indices.map { j in
            do { return try source.noise(j) } catch { preconditionFailure("DiffusionLogits: \(error)") }
        }
    }

    public func logits(_ x: Tensor, randomness: UInt64) -> Tensor {
        precondition(x.rank == 4, "DiffusionLogits: x must be [N, C, H, W], got \(x.shape)")
        let N = x.shape[0], K = conditions.count, T = timesteps.count
        let x0 = encoder.encode(pixels: x)
        var rowShape = x0.shape
        rowShape[0] = 1
        let rows = (0..<N).map { x0.sliced(axis: 0, $0..<($0 + 1)) }
        let eps = (0..<N).map { noiseDraws(image: $0, shape: rowShape, randomness: randomness) }
        let scale = -temperature / Double(T)
        // Items in (image, class, timestep) order: item ((n K) + k) T + j.
        let total = N * K * T
        var pieces: [Tensor] = []
        var start = 0
        while start < total {
            let items = start..<Swift.min(start + batchSize, total)
            let index = items.map { i in (n: i / (K * T), k: (i / T) % K, j: i % T) }
            let ts = index.map { timesteps[$0.j] }
            let xb = Tensor.concat(index.map { rows[$0.n] }, axis: 0)
            let eb = Tensor.concat(index.map { eps[$0.n][$0.j] }, axis: 0)
            let xt = schedule.addNoise(xb, noise: eb, timesteps: ts)
            let labels = Tensor(shape: [index.count], index.map { Float(conditions[$0.k]) })
            let out = model.predict(xt, timesteps: ts.map(Float.init), conditions: labels)
            let epsHat = schedule.epsilon(fromOutput: out, sample: xt, timesteps: ts)
            let err = (epsHat - eb).square().mean(axes: [1, 2, 3])
            let coef = Tensor(shape: [index.count], index.map { Float(scale * weights[$0.j]) })
            pieces.append(err * coef)
            start = items.upperBound
        }
        return Tensor.concat(pieces, axis: 0).reshaped([N, K, T]).sum(axes: [2])
    }
}

/// Stops weight gradients: the classifier is differentiated with respect to its input only, so
/// a `Module`'s parameters are made non-leaves (`requiresGrad = false`). Without this every
/// backward pass would also compute and accumulate the weights' gradients.
func freezeParameters(_ model: ConditionalNoisePredictor) {
    guard let module = model as? Module else { return }
    for p in module.parameters { p.requiresGrad = false }
}
