import Datasets
import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

/// `diffclass train`: a class-conditional diffusion U-Net, resumable from its checkpoint.
struct TrainCommand: Command {
    let name = "train"
    let summary = "train a class-conditional diffusion U-Net"
    let usage = """
    usage: diffclass train (--dataset fashion-mnist | --data DIR) --out DIR [options]

    Trains a class-conditional diffusion U-Net (the null class is the last class embedding) and saves
    a diffusers folder with a checkpoint; SIGINT/SIGTERM stop after the current step and checkpoint.

    options:
      [--steps N] [--batch-size N] [--lr X] [--warmup N] [--ema-decay X] [--label-dropout P] [--grad-clip X]
      [--weight-decay X] [--checkpoint-every N] [--seed S] [--config config.json]
      [--schedule linear|scaled_linear|squaredcos_cap_v2] [--prediction epsilon|v_prediction|sample] [--limit N]
      [--lr-schedule constant|cosine] (cosine: from --lr to 0 at --steps, after warm-up)
      [--init-from MODEL_DIR] (start from a diffusers folder's weights, model and EMA; fresh optimizer)
      [--resume] (continue the checkpoint in --out)
    """
    let valuedFlags: Set<String> = ["out", "dataset", "data", "steps", "batch-size", "lr", "warmup", "weight-decay", "ema-decay",
                                    "grad-clip", "label-dropout", "checkpoint-every", "seed", "config", "schedule", "prediction", "limit",
                                    "lr-schedule", "init-from"]
    let switches: Set<String> = ["resume"]
    func run(_ args: inout Arguments) throws -> Int32 { try runTrain(&args); return 0 }
}

/// Set by SIGINT/SIGTERM: the trainer stops after the current step and checkpoints.
nonisolated(unsafe) var stopRequested: Int32 = 0

func installStopHandler() {
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
}

func runTrain(_ args: inout Arguments) throws {
    guard let out = args.string("out") else { throw UsageError("train needs --out DIR") }
    let dataset = args.string("dataset"), data = args.string("data")
    var options = TrainingOptions()
    options.steps = try args.int("steps", range: 1...10_000_000) ?? options.steps
    options.batchSize = try args.int("batch-size", range: 1...65536) ?? options.batchSize
    options.learningRate = Float(try args.double("lr", range: 0...10) ?? Double(options.learningRate))
    options.warmupSteps = try args.int("warmup", range: 0...10_000_000) ?? options.warmupSteps
    options.weightDecay = Float(try args.double("weight-decay", range: 0...10) ?? Double(options.weightDecay))
    options.emaDecay = Float(try args.double("ema-decay", range: 0...1) ?? Double(options.emaDecay))
    options.gradientClip = Float(try args.double("grad-clip", range: 0...1e9) ?? Double(options.gradientClip))
    options.labelDropout = Float(try args.double("label-dropout", range: 0...1) ?? Double(options.labelDropout))
    options.checkpointEvery = try args.int("checkpoint-every", range: 1...10_000_000) ?? options.checkpointEvery
    options.seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    let configPath = args.string("config")
    let betaSchedule = args.string("schedule") ?? "linear"
    let prediction = args.string("prediction") ?? "epsilon"
    if let name = args.string("lr-schedule") {
        guard let schedule = TrainingOptions.LearningRateSchedule(rawValue: name) else {
            throw UsageError("--lr-schedule: '\(name)' is not constant or cosine")
        }
        options.learningRateSchedule = schedule == .constant ? nil : schedule
    }
    options.initFrom = args.string("init-from").map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    let resume = args.flag("resume")
    let limit = try args.int("limit", range: 1...Int.max)
    try args.finish(command: "train")

    var train = try DatasetLocator.load(dataset: dataset, data: data, split: .train)
    if let limit { train = train.prefix(limit) }
    options.numClasses = train.classNames.count
    let outURL = URL(fileURLWithPath: out)
    let hasCheckpoint = FileManager.default.fileExists(atPath: outURL.appendingPathComponent("checkpoint/state.json").path)
    if hasCheckpoint && !resume {
        throw UsageError("\(out) already holds a training checkpoint: pass --resume to continue it, or choose another --out")
    }
    var config: UNet2DConfig
    if let configPath {
        config = try UNet2DConfig.load(URL(fileURLWithPath: configPath))
        guard config.numClassEmbeds == options.numClasses + 1 else {
            throw UsageError("\(configPath): num_class_embeds must be \(options.numClasses + 1) (\(options.numClasses) classes + the null class)")
        }
    } else if hasCheckpoint {
        config = try UNet2DConfig.load(outURL.appendingPathComponent("config.json"))
    } else if let initFrom = options.initFrom {
        config = try UNet2DConfig.load(URL(fileURLWithPath: initFrom).appendingPathComponent("config.json"))
        guard config.numClassEmbeds == options.numClasses + 1 else {
            throw UsageError("--init-from \(initFrom): num_class_embeds must be \(options.numClasses + 1) (\(options.numClasses) classes + the null class)")
        }
    } else {
        config = UNet2DConfig.smallClassConditional(imageSize: train.height, channels: train.channels, classes: options.numClasses)
    }
    let scheduler = SchedulerConfig(betaSchedule: betaSchedule, predictionType: prediction)
    try scheduler.validate(file: "--schedule/--prediction")
    let model = UNet2DModel(config: config, seed: options.seed)
    let trainer = DiffusionTrainer(model: model, schedule: NoiseSchedule(scheduler), options: options, data: train)
    if resume, try trainer.resumeIfPossible(from: outURL) {
        print("resumed from \(out)/checkpoint at step \(trainer.step)")
    } else if let initFrom = options.initFrom {
        try trainer.initializeFromFolder()
        print("initialised from \(initFrom) (model and EMA; fresh optimizer state)")
    }
    print(String(format: "training %@ on %d images (%@), %.2f M parameters, %.1f MFLOP/forward, %@",
                 "UNet2DModel", train.count, train.name, Double(model.parameterCount) / 1e6, model.flopsPerImage / 1e6, threadCount()))
    // The class names beside the model, so that eval matches image folders to its classes by name.
    try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
    try ModelClassNames.write(train.classNames, to: outURL)
    installStopHandler()
    try trainer.run(outputDirectory: outURL, shouldStop: { stopRequested != 0 }) { p in
        let eta = Int(p.secondsRemaining)
        print(String(format: "step %d/%d  loss %.5f  lr %.2e  %.1f img/s  ETA %dh%02dm", p.step, p.steps, p.loss,
                     p.learningRate, p.imagesPerSecond, eta / 3600, eta / 60 % 60))
        fflush(stdout)
    }
    print("saved \(out) at step \(trainer.step)\(trainer.step < options.steps ? " (stopped early; rerun with --resume)" : "")")
}
