import Foundation
import NeuralNetworks
import TensorEngine

/// Labelled images for training: a batch as ([n, C, H, W] in [-1, 1], class ids [n] as Float).
public protocol TrainingData {
    var count: Int { get }
    func batch(_ indices: [Int]) -> (images: Tensor, labels: Tensor)
}

/// Settings of a training run; saved with every checkpoint, and a resumed run must use the same.
public struct TrainingOptions: Codable, Equatable {
    public var steps = 20_000
    public var batchSize = 128
    public var learningRate: Float = 2e-3
    public var warmupSteps = 500
    public var weightDecay: Float = 0.0
    public var emaDecay: Float = 0.999
    public var gradientClip: Float = 1.0
    /// Probability of replacing a label by the null class (index = number of classes), so one
    /// model is both conditional and unconditional.
    public var labelDropout: Float = 0.1
    public var numClasses = 10
    public var checkpointEvery = 500
    public var seed: UInt64 = 0
    /// The learning rate after warm-up: constant (nil, as runs made before the option), or a
    /// cosine decay from `learningRate` to 0 at `steps`.
    public var learningRateSchedule: LearningRateSchedule? = nil
    /// A diffusers model folder whose weights start the run (model and EMA), instead of a fresh
    /// initialisation; the optimizer state starts fresh. nil: initialised from `seed`.
    public var initFrom: String? = nil
    public init() {}

    public enum LearningRateSchedule: String, Codable, Sendable { case constant, cosine }

    enum CodingKeys: String, CodingKey {
        case steps, batchSize = "batch_size", learningRate = "learning_rate", warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay", emaDecay = "ema_decay", gradientClip = "gradient_clip"
        case labelDropout = "label_dropout", numClasses = "num_classes", checkpointEvery = "checkpoint_every", seed
        case learningRateSchedule = "learning_rate_schedule", initFrom = "init_from"
    }

    /// The options that must match for a resume. The step count may grow, except under a cosine
    /// schedule, whose rates depend on it.
    func sameRun(as other: TrainingOptions) -> Bool {
        var a = self, b = other
        if a.learningRateSchedule != .cosine { a.steps = 0; b.steps = 0 }
        a.checkpointEvery = 0; b.checkpointEvery = 0
        return a == b
    }

    /// The learning rate of step `s` (0-based): linear warm-up, then the schedule.
    public func learningRate(atStep s: Int) -> Float {
        let warm = learningRate * Swift.min(1, Float(s + 1) / Float(Swift.max(1, warmupSteps)))
        guard learningRateSchedule == .cosine, s >= warmupSteps else { return warm }
        let progress = Double(s - warmupSteps) / Double(Swift.max(1, steps - warmupSteps))
        return learningRate * Float(0.5 * (1 + Foundation.cos(Double.pi * Swift.min(1, progress))))
    }
}

/// One line of progress.
public struct TrainingProgress {
    public let step: Int, steps: Int
    public let loss: Float
    public let imagesPerSecond: Double
    public let secondsRemaining: Double
    public let learningRate: Float
}

public struct TrainingError: SettingNamingError {
    public let text: ErrorText
    public init(_ text: ErrorText) { self.text = text }
    /// "`setting`: message".
    public init(_ setting: Setting, _ message: ErrorText) { text = "\(setting): \(message)" }
}

/// The training settings named in errors (see `Setting`).
extension Setting {
    /// A diffusers folder whose weights a new run starts from.
    public static let initFrom = Setting("init_from")
    /// The U-Net config (`config.json`) a run trains.
    public static let unetConfig = Setting("config")
}

/// What `DiffusionTrainer` optimises: a module, its loss on one batch, and the folder its weights
/// are exported as. `DDPMObjective` (a diffusers UNet2DModel) is here; EDM's preconditioned
/// networks have theirs in the EDM target.
public protocol TrainingObjective: AnyObject {
    /// The module trained (its parameters are optimised and checkpointed by key).
    var module: Module { get }
    /// A short name for logs, e.g. "UNet2DModel".
    var modelName: String { get }
    /// The loss of one batch (images in [-1, 1], the data's class ids); every random draw comes
    /// from `generator` in a fixed order, so a step is reproducible from (seed, step).
    func loss(images: Tensor, labels: [Float], options: TrainingOptions, generator: inout RandomGenerator) -> Tensor
    /// Writes the module, with the weights it holds now, as the model folder users load.
    func export(to dir: URL, metadata: [String: String]) throws
    /// The parameters (by key) of the model folder a run starts from (`TrainingOptions.initFrom`);
    /// throws when its config differs from the one trained.
    func initialParameters(from folder: URL) throws -> [String: Tensor]
}

/// The DDPM objective of a class-conditional UNet2DModel: MSE to the schedule's target
/// (epsilon, v or sample) at uniform timesteps, and label dropout to the null class (id =
/// number of classes). Matches diffusers' train_unconditional / DDPM training loss.
public final class DDPMObjective: TrainingObjective {
    public let model: UNet2DModel
    public let schedule: NoiseSchedule
    public init(model: UNet2DModel, schedule: NoiseSchedule) { self.model = model; self.schedule = schedule }

    public var module: Module { model }
    public var modelName: String { "UNet2DModel" }

    public func loss(images x0: Tensor, labels dataLabels: [Float], options: TrainingOptions, generator g: inout RandomGenerator) -> Tensor {
        let b = x0.shape[0]
        let t = (0..<b).map { _ in g.nextInt(upperBound: schedule.numTrainTimesteps) }
        let noise = Tensor.randn(x0.shape, generator: &g)
        let drop = g.uniforms(count: b)
        let labelValues = dataLabels.enumerated().map { i, v in drop[i] < options.labelDropout ? Float(options.numClasses) : v }
        let labels = Tensor(shape: [b], labelValues)
        let xt = schedule.addNoise(x0, noise: noise, timesteps: t)
        let target = schedule.target(x0: x0, noise: noise, timesteps: t)
        let out = model(xt, timesteps: t.map(Float.init), classLabels: labels)
        return (out - target).square().mean()
    }

    /// A diffusers folder: the U-Net and the scheduler config.
    public func export(to dir: URL, metadata: [String: String]) throws {
        try model.save(to: dir, metadata: metadata)
        let schedDir = dir.appendingPathComponent("scheduler")
        try FileManager.default.createDirectory(at: schedDir, withIntermediateDirectories: true)
        try schedule.config.write(to: schedDir.appendingPathComponent("scheduler_config.json"))
    }

    public func initialParameters(from folder: URL) throws -> [String: Tensor] {
        let source = try UNet2DModel.load(from: folder)
        guard source.config == model.config else {
            throw TrainingError("\(folder.appendingPathComponent("config.json").path): its U-Net config differs from the one being trained; train with \(Setting.unetConfig) set to it")
        }
        return source.stateDict()
    }
}

/// Trains a diffusion model on a `TrainingObjective` with AdamW, linear warm-up (then a constant
/// or cosine rate), gradient clipping and EMA. Every random draw comes from (seed, step), and
/// batches from a seeded permutation per epoch, so a run stopped and resumed from any checkpoint
/// ends exactly where an uninterrupted run ends (same thread-independent kernels, same optimizer
/// and EMA state).
public final class DiffusionTrainer {
    public let objective: TrainingObjective
    public let options: TrainingOptions
    let data: TrainingData
    let optimizer: AdamW
    let ema: ExponentialMovingAverage
    public private(set) var step = 0
    private var permutationCache: (epoch: Int, order: [Int])?

    /// The module trained.
    public var module: Module { objective.module }

    public init(objective: TrainingObjective, options: TrainingOptions, data: TrainingData) {
        // 16-bit weights are not trainable parameters: training would silently skip them.
        precondition(!objective.module.hasHalfPrecisionWeights,
                     "DiffusionTrainer: the model keeps weights as 16-bit (WeightStorage fp16/bf16), which cannot be trained; load it with weightStorage: .float32")
        self.objective = objective
        self.options = options
        self.data = data
        optimizer = AdamW(parameters: objective.module.parameters, learningRate: options.learningRate, weightDecay: options.weightDecay)
        ema = ExponentialMovingAverage(parameters: objective.module.parameters, decay: options.emaDecay)
    }

    /// A class-conditional UNet2DModel with the DDPM objective (`DDPMObjective`).
    public convenience init(model: UNet2DModel, schedule: NoiseSchedule, options: TrainingOptions, data: TrainingData) {
        self.init(objective: DDPMObjective(model: model, schedule: schedule), options: options, data: data)
    }

    /// Starts from the weights of the model folder `options.initFrom` (model and EMA; the
    /// optimizer starts fresh). Call before the first step of a new run (a resume restores the
    /// checkpoint instead). The folder's config must equal the model's.
    public func initializeFromFolder() throws {
        guard let path = options.initFrom else { return }
        guard step == 0 else { throw TrainingError(.initFrom, "the run is already at step \(step)") }
        let weights = try objective.initialParameters(from: URL(fileURLWithPath: path))
        try module.load(weights, source: path)
        var average: [String: Tensor] = ["updates": Tensor(0)]
        for (i, p) in module.parameters.enumerated() { average["ema.\(i)"] = p }
        try ema.restore(average)
    }

    /// Dataset indices of batch `s`: the sample stream runs through a new seeded permutation each epoch.
    func batchIndices(_ s: Int) -> [Int] {
        let n = data.count
        return (0..<options.batchSize).map { j in
            let i = s * options.batchSize + j
            let epoch = i / n
            if permutationCache?.epoch != epoch {
                var g = RandomGenerator(seed: options.seed, stream: 0x5045524D + UInt64(epoch) << 32)
                permutationCache = (epoch, g.permutation(n))
            }
            return permutationCache!.order[i % n]
        }
    }

    /// One optimisation step; returns the loss.
    @discardableResult
    public func trainStep() -> Float {
        let s = step
        let indices = batchIndices(s)
        let (x0, dataLabels) = data.batch(indices)
        var g = RandomGenerator(seed: options.seed, stream: 0x5354455000000000 | UInt64(s))
        let loss = objective.loss(images: x0, labels: dataLabels.scalars, options: options, generator: &g)
        loss.backward()
        clipGradientNorm(module.parameters, maxNorm: options.gradientClip)
        optimizer.learningRate = options.learningRate(atStep: s)
        optimizer.update()
        ema.update(module.parameters)
        module.zeroGrad()
        step += 1
        return loss.item
    }

    // MARK: Checkpoints

    static let checkpointName = "checkpoint"

    /// Writes model, EMA, optimizer state and options to `dir/checkpoint` atomically (a complete
    /// new folder replaces the old one), then the EMA model as a diffusers folder in `dir`.
    public func saveCheckpoint(to dir: URL) throws {
        let fm = FileManager.default
        let tmp = dir.appendingPathComponent(Self.checkpointName + ".tmp")
        let final = dir.appendingPathComponent(Self.checkpointName)
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try Safetensors.write(module.stateDict(), to: tmp.appendingPathComponent("model.safetensors"))
        try Safetensors.write(ema.state(), to: tmp.appendingPathComponent("ema.safetensors"))
        try Safetensors.write(optimizer.state(), to: tmp.appendingPathComponent("optimizer.safetensors"))
        let state = CheckpointState(step: step, options: options)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: tmp.appendingPathComponent("state.json"))
        let old = dir.appendingPathComponent(Self.checkpointName + ".old")
        try? fm.removeItem(at: old)
        if fm.fileExists(atPath: final.path) { try fm.moveItem(at: final, to: old) }
        try fm.moveItem(at: tmp, to: final)
        try? fm.removeItem(at: old)
        try exportEMAModel(to: dir)
    }

    /// Writes the EMA weights as the objective's model folder (for a U-Net: a diffusers folder
    /// with the scheduler config).
    public func exportEMAModel(to dir: URL) throws {
        let live = module.stateDict()
        ema.copy(to: module.parameters)
        defer { for (k, p) in module.namedParameters() { p.assign(live[k]!) } }
        try objective.export(to: dir, metadata: ["trained_steps": String(step)])
    }

    /// Restores from `dir/checkpoint` when present; returns whether it did.
    public func resumeIfPossible(from dir: URL) throws -> Bool {
        let ck = dir.appendingPathComponent(Self.checkpointName)
        let stateURL = ck.appendingPathComponent("state.json")
        guard FileManager.default.fileExists(atPath: stateURL.path) else { return false }
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: stateURL)) } catch {
            throw TrainingError("\(stateURL.path): unreadable checkpoint state: \(error)")
        }
        guard state.options.sameRun(as: options) else {
            throw TrainingError("\(stateURL.path): the checkpoint was made with other settings (\(state.options)); resume with the same ones or use another \(Setting.runFolder)")
        }
        try module.load(SafetensorsFile(url: ck.appendingPathComponent("model.safetensors")).tensors(),
                       source: ck.appendingPathComponent("model.safetensors").path)
        try ema.restore(SafetensorsFile(url: ck.appendingPathComponent("ema.safetensors")).tensors())
        try optimizer.restore(SafetensorsFile(url: ck.appendingPathComponent("optimizer.safetensors")).tensors())
        step = state.step
        return true
    }

    struct CheckpointState: Codable {
        let step: Int
        let options: TrainingOptions
    }

    /// Trains up to `options.steps`, checkpointing every `checkpointEvery` steps and at the end;
    /// `progress` is called every `logEvery` steps. `shouldStop` is polled between steps (a
    /// signal handler sets it) and leads to a final checkpoint.
    public func run(outputDirectory dir: URL, logEvery: Int = 20, shouldStop: () -> Bool = { false },
                    progress: (TrainingProgress) -> Void) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let logURL = dir.appendingPathComponent("loss.csv")
        // Keep the log consistent with the checkpoint: a run killed between checkpoints logged
        // steps that the resumed run will redo.
        var logText = "step,loss\n"
        if let old = try? String(contentsOf: logURL, encoding: .utf8) {
            for line in old.split(separator: "\n").dropFirst() {
                if let s = Int(line.split(separator: ",").first ?? ""), s <= step { logText += line + "\n" }
            }
        }
        try Data(logText.utf8).write(to: logURL, options: .atomic)
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? log.close() }
        log.seekToEndOfFile()
        var window: [Float] = []
        var windowStart = DispatchTime.now().uptimeNanoseconds, windowSteps = 0
        while step < options.steps {
            if shouldStop() { break }
            let loss = trainStep()
            log.write(Data("\(step),\(loss)\n".utf8))
            window.append(loss)
            windowSteps += 1
            if step % logEvery == 0 || step == options.steps {
                let now = DispatchTime.now().uptimeNanoseconds
                let seconds = Double(now - windowStart) / 1e9
                let ips = Double(windowSteps * options.batchSize) / Swift.max(seconds, 1e-9)
                progress(TrainingProgress(step: step, steps: options.steps, loss: window.reduce(0, +) / Float(window.count),
                                          imagesPerSecond: ips,
                                          secondsRemaining: Double((options.steps - step) * options.batchSize) / Swift.max(ips, 1e-9),
                                          learningRate: optimizer.learningRate))
                window.removeAll()
                windowStart = now
                windowSteps = 0
            }
            if step % options.checkpointEvery == 0 { try saveCheckpoint(to: dir) }
        }
        try saveCheckpoint(to: dir)
    }
}
