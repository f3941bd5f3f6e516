import Datasets
import Diffusion
import Foundation

/// `diffclass loss`: a model's held-out denoising loss.
struct LossCommand: Command {
    let name = "loss"
    let summary = "held-out denoising loss of a model"
    let usage = """
    usage: diffclass loss --model DIR (--dataset fashion-mnist | --data DIR) [--split test|train] [--limit N] [--seed S]

    The DDPM training loss (MSE to the schedule's target, uniform timesteps) on the first --limit
    images (2000) of a split, with seeded timesteps and noise.
    """
    let valuedFlags: Set<String> = ["model", "dataset", "data", "split", "limit", "seed"]
    func run(_ args: inout Arguments) throws -> Int32 { try runLoss(&args); return 0 }
}

func runLoss(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("loss needs --model DIR") }
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    let limit = try args.int("limit", range: 1...Int.max) ?? 2000
    let seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    try args.finish(command: "loss")
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split must be train or test, got '\(splitName)'") }
    let folder = URL(fileURLWithPath: modelPath)
    let model = try UNet2DModel.load(from: folder)
    let schedule = NoiseSchedule(try SchedulerConfig.load(folder.appendingPathComponent(DiffusersFolder.schedulerPath)))
    let images = try DatasetLocator.load(dataset: dataset, data: data, split: split)
    let start = Date()
    let loss = denoisingLoss(model: model, schedule: schedule, data: images, count: limit, seed: seed)
    guard loss.isFinite else { throw UsageError("\(modelPath): the denoising loss is \(loss) (the model's outputs overflow); expected a finite loss") }
    print(String(format: "denoising loss (MSE, %@ split, %d images, seed %llu): %.5f  [%.1f s]", splitName,
                 Swift.min(limit, images.count), seed, loss, Date().timeIntervalSince(start)))
}
