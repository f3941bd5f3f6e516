import Datasets
import Diffusion
import EDM
import Foundation
import TensorEngine
import Images

/// `diffclass sample`: a PNG grid of samples from a class-conditional model.
struct SampleCommand: Command {
    let name = "sample"
    let summary = "draw samples from a class-conditional model into a PNG grid"
    let usage = """
    usage: diffclass sample --model DIR --out FILE.png [--class K|all] [--n N] [--steps N] [--sampler ddim|ddpm]
                            [--guidance W] [--seed S] [--ddim-eps clipped|model]

    Draws --n samples of class K (or of every class with 'all', one row per class) with DDIM or DDPM
    and classifier-free guidance W, into one PNG grid. --ddim-eps (DDIM): eps recomputed from the
    clipped x0 (clipped, the default, as diffusers' use_clipped_model_output=True) or the network's eps
    (model, diffusers' default, which degrades with more steps when x0 is clipped often, e.g. under guidance).

    EDM model folders: EDM's Heun sampler (edm_sampler: --steps default 18, sigma 0.002..80, rho 7,
    no churn) on the class's one-hot label ('--class K' with K = label_dim: the zero label vector, the
    unconditional model); --sampler, --guidance and --ddim-eps do not apply.
    """
    let valuedFlags: Set<String> = ["model", "out", "class", "n", "steps", "guidance", "seed", "sampler", "ddim-eps"]
    func run(_ args: inout Arguments) throws -> Int32 { try runSample(&args); return 0 }
}

func runSample(_ args: inout Arguments) throws {
    guard let modelPath = args.string("model") else { throw UsageError("sample needs --model DIR") }
    guard let out = args.string("out") else { throw UsageError("sample needs --out FILE.png") }
    let classArg = args.string("class") ?? "all"
    let n = try args.int("n", range: 1...4096)
    let steps = try args.int("steps", range: 1...1000) ?? 50
    let guidance = Float(try args.double("guidance", range: 0...100) ?? 1)
    let seed = UInt64(try args.int("seed", range: 0...Int.max) ?? 0)
    let methodName = args.string("sampler") ?? "ddim"
    let ddimEps = args.string("ddim-eps") ?? "clipped"
    try args.finish(command: "sample")
    guard ddimEps == "clipped" || ddimEps == "model" else {
        throw UsageError("--ddim-eps must be clipped (eps recomputed from the clipped x0) or model (the network's eps, diffusers' default), got '\(ddimEps)'")
    }
    guard let method = Sampler.Method(rawValue: methodName) else { throw UsageError("--sampler must be ddpm or ddim, got '\(methodName)'") }

    let folder = URL(fileURLWithPath: modelPath)
    if EDMSetup.isEDMFolder(modelPath) {
        for flag in ["sampler", "guidance", "ddim-eps"] where args.has(flag) {
            throw UsageError("--\(flag) does not apply to EDM model folders (\(modelPath)), which EDM's Heun sampler draws from")
        }
        try sampleEDM(folder: folder, out: out, classArg: classArg, n: n, steps: args.has("steps") ? steps : 18, seed: seed)
        return
    }
    let model = try UNet2DModel.load(from: folder)
    let scheduleURL = folder.appendingPathComponent(DiffusersFolder.schedulerPath)
    let schedule = NoiseSchedule(FileManager.default.fileExists(atPath: scheduleURL.path) ? try SchedulerConfig.load(scheduleURL) : SchedulerConfig())
    guard let embeds = model.config.numClassEmbeds else { throw UsageError("\(modelPath): the model is not class-conditional") }
    let classCount = embeds - 1
    let (classes, columns) = try sampleClasses(classArg, n: n, classCount: classCount)
    guard steps <= schedule.numTrainTimesteps, schedule.numTrainTimesteps % steps == 0 || method == .ddim else {
        throw UsageError("--steps \(steps) must divide the \(schedule.numTrainTimesteps) training timesteps for ddpm")
    }
    var sampler = Sampler(model: model, schedule: schedule)
    sampler.method = method
    sampler.steps = steps
    sampler.guidance = guidance
    sampler.nullClass = classCount
    sampler.clippedModelOutput = ddimEps == "clipped"
    let size = model.config.sampleSize ?? [28, 28]
    let start = Date()
    let progress = SamplingProgress(steps: steps)
    let samples = sampler.sample(classes: classes, channels: model.config.inChannels, height: size[0], width: size[1], seed: seed,
                                 progress: progress.step)
    progress.finish()
    let per = samples.count / classes.count
    let images = (0..<classes.count).map { Array(samples.scalars[($0 * per)..<(($0 + 1) * per)]) }
    let grid = Image.grid(images, channels: model.config.inChannels, height: size[0], width: size[1], columns: columns)
    try grid.writePNG(to: URL(fileURLWithPath: out))
    print(String(format: "wrote %@: %d samples, %@ %d steps, guidance %.1f, %.1f s", out, classes.count, methodName, steps,
                 guidance, Date().timeIntervalSince(start)))
}

/// `sample` on an EDM folder: EDM's Heun sampler, one row per class for 'all'.
func sampleEDM(folder: URL, out: String, classArg: String, n: Int?, steps: Int, seed: UInt64) throws {
    let model = try EDMModel.load(from: folder)
    let classCount = model.labelDim
    if classArg == "all", classCount == 0 {
        throw UsageError("--class all: \(folder.path) is unconditional (label_dim 0); leave --class out or give 0")
    }
    let (classes, columns) = try sampleClasses(classArg, n: n, classCount: classCount)
    let c = model.config.imgChannels, r = model.config.imgResolution
    var g = RandomGenerator(seed: seed)
    let latents = Tensor.randn([classes.count, c, r, r], generator: &g)
    var labels: Tensor? = nil
    if classCount > 0 {
        var rows = [Float](repeating: 0, count: classes.count * classCount)
        for (i, k) in classes.enumerated() where k < classCount { rows[i * classCount + k] = 1 }
        labels = Tensor(shape: [classes.count, classCount], rows)
    }
    var sampler = EDMSampler()
    sampler.steps = steps
    let start = Date()
    let progress = SamplingProgress(steps: steps)
    var churn = RandomGenerator(seed: seed, stream: 1)
    let samples = sampler.sample(model: model, latents: latents, classLabels: labels, generator: &churn, progress: progress.step)
    progress.finish()
    let per = c * r * r
    let images = (0..<classes.count).map { Array(samples.scalars[($0 * per)..<(($0 + 1) * per)]) }  // Image.grid clamps to [-1, 1]
    let grid = Image.grid(images, channels: c, height: r, width: r, columns: columns)
    try grid.writePNG(to: URL(fileURLWithPath: out))
    print(String(format: "wrote %@: %d samples, EDM Heun %d steps (%d network calls each), %.1f s", out, classes.count, steps,
                 2 * steps - 1, Date().timeIntervalSince(start)))
}

/// The class of each sample and the grid's columns: 'all' is --n (default 8) of each class, one
/// row per class; a class id K in 0...classCount (classCount: unconditional) is --n (default 64)
/// of K in a square grid.
func sampleClasses(_ classArg: String, n: Int?, classCount: Int) throws -> (classes: [Int], columns: Int) {
    if classArg == "all" {
        let per = n ?? 8
        return ((0..<classCount).flatMap { Array(repeating: $0, count: per) }, per)
    }
    guard let k = Int(classArg), k >= 0, k <= classCount else {
        throw UsageError("--class must be 'all' or a class id in 0...\(classCount) (\(classCount) = unconditional), got '\(classArg)'")
    }
    let classes = Array(repeating: k, count: n ?? 64)
    return (classes, Int(Double(classes.count).squareRoot().rounded(.up)))
}

/// Sampling progress: a live counter on a terminal; in a log, a clean line per tenth of the steps.
struct SamplingProgress {
    let steps: Int
    let terminal = isatty(STDOUT_FILENO) != 0

    func step(_ i: Int) {
        if terminal {
            print("\rsampling step \(i)/\(steps)", terminator: "")
        } else if i % max(1, steps / 10) == 0 || i == steps {
            print("sampling step \(i)/\(steps)")
        }
        fflush(stdout)
    }

    func finish() { if terminal { print("") } }
}
