import Datasets
import Diffusion
import EDM
import Foundation
import NeuralNetworks
import TensorEngine

/// `diffclass train`: a class-conditional diffusion U-Net, resumable from its checkpoint.
struct TrainCommand: Command {
    let name = "train"
    let summary = "train a class-conditional diffusion U-Net (diffusers DDPM, or EDM's preconditioning)"
    let usage = """
    usage: diffclass train (--dataset fashion-mnist | --data DIR) --out DIR [options]

    Trains a class-conditional diffusion U-Net (the null class is the last class embedding) and saves
    a diffusers folder with a checkpoint; SIGINT/SIGTERM stop after the current step and checkpoint.
    With --precond edm|vp|ve: an EDM SongUNet in that preconditioning, trained with EDM's loss for it
    (edm: ln sigma ~ N(-1.2, 1.2^2), weight (s^2+sd^2)/(s sd)^2; label dropout zeroes the one-hot
    label, EDM's unconditional case), saved as an EDM folder (config.json, model.safetensors);
    --config is then an EDM config.json (default: a small DDPM++-style SongUNet).

    options:
      [--steps N] [--batch-size N] [--lr X] [--warmup N] [--ema-decay X] [--label-dropout P] [--grad-clip X]
      [--weight-decay X] [--checkpoint-every N] [--seed S] [--config config.json]
      [--schedule linear|scaled_linear|squaredcos_cap_v2] [--prediction epsilon|v_prediction|sample] [--limit N]
      [--lr-schedule constant|cosine] (cosine: from --lr to 0 at --steps, after warm-up)
      [--precond edm|vp|ve] (EDM's parameterization and loss; not with --schedule / --prediction)
      [--init-from MODEL_DIR] (start from a model folder's weights, model and EMA; fresh optimizer)
      [--resume] (continue the checkpoint in --out)
    """
    let valuedFlags: Set<String> = ["out", "dataset", "data", "steps", "batch-size", "lr", "warmup", "weight-decay", "ema-decay",
                                    "grad-clip", "label-dropout", "checkpoint-every", "seed", "config", "schedule", "prediction", "limit",
                                    "lr-schedule", "init-from", "precond"]
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
    let precondName = args.string("precond")
    let precond = try precondName.map { name -> EDMConfig.Precond in
        guard let p = EDMConfig.Precond(rawValue: name) else { throw UsageError("--precond: '\(name)' is not edm, vp or ve") }
        return p
    }
    if precond != nil {
        for flag in ["schedule", "prediction"] where args.has(flag) {
            throw UsageError("--\(flag) is a DDPM setting; --precond trains in EDM's parameterization, which has none")
        }
    }
    let betaSchedule = args.string("schedule") ?? "linear"
    let prediction = args.string("prediction") ?? "epsilon"
    let labelDropoutGiven = args.has("label-dropout")
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
    let trainer: DiffusionTrainer
    let parameterCount: Int, cost: String
    if let precond {
        var config: EDMConfig
        if let configPath {
            config = try EDMConfig.load(URL(fileURLWithPath: configPath))
        } else if hasCheckpoint {
            config = try EDMConfig.load(outURL.appendingPathComponent(EDMModel.configName))
        } else if let initFrom = options.initFrom {
            config = try EDMConfig.load(URL(fileURLWithPath: initFrom).appendingPathComponent(EDMModel.configName))
        } else {
            config = EDMConfig.small(imageSize: train.height, channels: train.channels, classes: options.numClasses, precond: precond)
            if labelDropoutGiven { config.labelDropout = Double(options.labelDropout) }
        }
        let source = configPath ?? options.initFrom ?? out
        guard config.precond == precond else {
            throw UsageError("\(source): its precond is \(config.precond.rawValue), not the --precond \(precond.rawValue) given")
        }
        guard config.labelDim == options.numClasses, config.imgChannels == train.channels,
              config.imgResolution == train.height, train.height == train.width else {
            throw UsageError("\(source): label_dim \(config.labelDim), img_channels \(config.imgChannels), img_resolution \(config.imgResolution) do not fit the data (\(options.numClasses) classes, \(train.channels) x \(train.height) x \(train.width))")
        }
        if labelDropoutGiven, Float(config.labelDropout) != options.labelDropout {
            throw UsageError("--label-dropout \(options.labelDropout) differs from \(source)'s label_dropout \(config.labelDropout) (the EDM network applies its own)")
        }
        options.labelDropout = Float(config.labelDropout)  // recorded in the checkpoint; the network applies it
        let model = EDMModel(config: config, seed: options.seed)
        trainer = DiffusionTrainer(objective: EDMObjective(model: model), options: options, data: train)
        parameterCount = model.parameterCount
        cost = "precond \(precond.rawValue)"
    } else {
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
        trainer = DiffusionTrainer(model: model, schedule: NoiseSchedule(scheduler), options: options, data: train)
        parameterCount = model.parameterCount
        cost = String(format: "%.1f MFLOP/forward", model.flopsPerImage / 1e6)
    }
    if resume, try trainer.resumeIfPossible(from: outURL) {
        print("resumed from \(out)/checkpoint at step \(trainer.step)")
    } else if let initFrom = options.initFrom {
        try trainer.initializeFromFolder()
        print("initialised from \(initFrom) (model and EMA; fresh optimizer state)")
    }
    print(String(format: "training %@ on %d images (%@), %.2f M parameters, %@, %@",
                 trainer.objective.modelName, train.count, train.name, Double(parameterCount) / 1e6, cost, threadCount()))
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
