import Diffusion
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine

/// `diffclass bench-sd`: the cost of a Stable Diffusion-sized U-Net or zero-shot classification.
struct BenchSDCommand: Command {
    let name = "bench-sd"
    let summary = "U-Net calls per second (or one zero-shot classification) of random-weight SD models"
    let usage = """
    usage: diffclass bench-sd --config unet/config.json [--batch N] [--latent 64] [--calls N] [--no-warmup]
                              [--weights-dtype fp32|fp16|bf16]
           diffclass bench-sd --pipeline DIR [--prompts 2] [--pairs 2] [--image-size 512] [--weights-dtype D]

    --config: U-Net calls per second of a random-weight UNet2DConditionModel (allocates its weights,
    3.5 GB for SD 2.0-base). --pipeline DIR (text_encoder/, unet/, vae/ configs, e.g.
    Tests/StableDiffusionTests/Fixtures/configs/sd2base): one random-weight zero-shot classification,
    seconds per stage and peak RSS.
    """
    let valuedFlags: Set<String> = ["pipeline", "config", "batch", "latent", "calls", "weights-dtype", "prompts", "pairs", "image-size"]
    let switches: Set<String> = ["no-warmup"]
    func run(_ args: inout Arguments) throws -> Int32 { try runBenchSD(&args); return 0 }
}

/// `diffclass bench-sd --config UNET_CONFIG.json [--batch N] [--latent N] [--calls N] [--weights-dtype D]`:
/// U-Net calls per second of a random-weight `UNet2DConditionModel` built from a diffusers
/// `unet/config.json` (e.g. SD 2.0-base's, `Tests/StableDiffusionTests/Fixtures/configs/
/// sd2base_unet.json`: about 3.5 GB of Float32 weights), at N x N latents (default 64, i.e.
/// 512x512 images) with 77-token encoder states, without gradients. Runs one warm-up forward and
/// `--calls` timed ones (default 1), and prints calls (batch items) per second and the peak
/// resident memory. Not a test: it allocates gigabytes and takes minutes on a CPU.
///
/// `--pipeline DIR` (a folder with `text_encoder/`, `unet/`, `vae/` configs, e.g.
/// `Fixtures/configs/sd2base`) instead times one whole zero-shot classification with random
/// weights: see `runBenchPipeline`.
func runBenchSD(_ args: inout Arguments) throws {
    if let dir = args.string("pipeline") { return try runBenchPipeline(&args, dir: dir) }
    guard let configPath = args.string("config") else { throw UsageError("bench-sd needs --config UNET_CONFIG.json or --pipeline DIR") }
    let batch = try args.int("batch", range: 1...1024) ?? 1
    let latent = try args.int("latent", range: 8...512) ?? 64
    let timed = try args.int("calls", range: 1...1000) ?? 1
    let warmup = !args.flag("no-warmup")
    let storage = try ZeroShotSetup.readWeightStorage(&args)
    try args.finish(command: "bench-sd")
    let config = try UNet2DConditionConfig.load(URL(fileURLWithPath: configPath))
    print("bench-sd: \(configPath): \(config.parameterCount) parameters, batch \(batch), \(latent)x\(latent) latents, weights \(storage.rawValue), \(threadCount())")
    fflush(stdout)
    var t0 = Date()
    let unet = WeightStorage.$current.withValue(storage) { UNet2DConditionModel(config: config, seed: 0) }
    MemoryStatistics.releaseIdleBuffers()  // as the loaders do after building
    print(String(format: "built in %.1f s, weights %.2f GB, live tensors %.2f GB", Date().timeIntervalSince(t0),
                 Double(unet.parameterByteCount) / 1e9, Double(MemoryStatistics.liveBytes) / 1e9))
    fflush(stdout)
    let cross = config.crossAttentionDim[0]
    var generator = RandomGenerator(seed: 1)
    let sample = Tensor.randn([batch, config.inChannels, latent, latent], generator: &generator)
    let states = Tensor.randn([batch, 77, cross], generator: &generator)
    let ts = (0..<batch).map { Float(100 + 800 * $0 / max(batch, 1)) }
    if warmup {
        t0 = Date()
        _ = Autograd.noGrad { unet(sample, timesteps: ts, encoderHiddenStates: states) }
        print(String(format: "warm-up forward: %.2f s", Date().timeIntervalSince(t0)))
        fflush(stdout)
    }
    t0 = Date()
    for _ in 0..<timed { _ = Autograd.noGrad { unet(sample, timesteps: ts, encoderHiddenStates: states) } }
    let seconds = Date().timeIntervalSince(t0)
    print(String(format: "%d timed forward(s) of batch %d: %.2f s per forward, %.4f U-Net calls/s (%.1f s per call); peak RSS %.2f GB, peak tensors %.2f GB",
                 timed, batch, seconds / Double(timed), Double(timed * batch) / seconds, seconds / Double(timed * batch),
                 Double(MemoryStatistics.peakResidentBytes) / 1e9, Double(MemoryStatistics.peakBytes) / 1e9))
}

/// `bench-sd --pipeline DIR [--weights-dtype fp32|fp16|bf16] [--prompts K] [--pairs P] [--image-size S]`:
/// one zero-shot classification of one image with random weights of a real pipeline's size,
/// from DIR's `text_encoder/config.json`, `unet/config.json` and `vae/config.json` (no weights
/// read): build the three models, encode K prompts (default 2; fixed token ids, 77 long, as
/// the tokenizer pads them: the cost does not depend on the ids), VAE-encode one random S x S
/// image (default 512), and score P (class, timestep) pairs (default 2) in one U-Net forward
/// of batch P. Prints each stage's seconds, the total, the weights' bytes, and the process's
/// peak RSS (VmHWM), which is the number to compare across `--weights-dtype`.
func runBenchPipeline(_ args: inout Arguments, dir: String) throws {
    let prompts = try args.int("prompts", range: 1...1000) ?? 2
    let pairs = try args.int("pairs", range: 1...1024) ?? 2
    let imageSize = try args.int("image-size", range: 8...4096) ?? 512
    let storage = try ZeroShotSetup.readWeightStorage(&args)
    try args.finish(command: "bench-sd")
    let folder = URL(fileURLWithPath: dir)
    let textConfig = try CLIPTextConfig.load(folder.appendingPathComponent("text_encoder/config.json"))
    let unetConfig = try UNet2DConditionConfig.load(folder.appendingPathComponent("unet/config.json"))
    let vaeConfig = try AutoencoderKLConfig.load(folder.appendingPathComponent("vae/config.json"))
    guard imageSize % (1 << (vaeConfig.blockOutChannels.count - 1 + unetConfig.blockOutChannels.count - 1)) == 0 else {
        throw UsageError("--image-size: \(imageSize) must be a multiple of \(1 << (vaeConfig.blockOutChannels.count + unetConfig.blockOutChannels.count - 2))")
    }
    print("bench-sd --pipeline \(dir): weights \(storage.rawValue), \(prompts) prompts, \(imageSize)x\(imageSize) image, "
        + "\(pairs) (class, timestep) pairs, \(threadCount())")
    fflush(stdout)
    let start = Date()
    var t0 = Date()
    func stage(_ name: String) {
        print(String(format: "%@: %.2f s (peak RSS so far %.2f GB)", name, Date().timeIntervalSince(t0),
                     Double(MemoryStatistics.peakResidentBytes) / 1e9))
        fflush(stdout)
        t0 = Date()
    }
    let (textEncoder, unet, vae) = WeightStorage.$current.withValue(storage) {
        (CLIPTextModel(config: textConfig, seed: 0), UNet2DConditionModel(config: unetConfig, seed: 1), AutoencoderKL(config: vaeConfig, seed: 2))
    }
    MemoryStatistics.releaseIdleBuffers()  // as the loaders do after building
    let weightBytes = textEncoder.parameterByteCount + unet.parameterByteCount + vae.parameterByteCount
    print(String(format: "weights: text encoder %.3f GB, U-Net %.3f GB, VAE %.3f GB (%d + %d + %d parameters)",
                 Double(textEncoder.parameterByteCount) / 1e9, Double(unet.parameterByteCount) / 1e9, Double(vae.parameterByteCount) / 1e9,
                 textEncoder.parameterCount, unet.parameterCount, vae.parameterCount))
    stage("built")

    // Start token, a few word ids, end token, then padding, as encodePadded lays a prompt out.
    let length = textConfig.maxPositionEmbeddings
    let rows = (0..<prompts).map { k -> [Int] in
        let words = [320, 1125, 539, 320, 1000 + k]
        return Array(([49406] + words + [49407] + [Int](repeating: 0, count: length)).prefix(length)).map { $0 % textConfig.vocabSize }
    }
    let embeddings = textEncoder.encode(rows)
    stage("text encoder (\(prompts) prompts)")

    var g = RandomGenerator(seed: 3)
    let image = Tensor.uniform([1, vaeConfig.inChannels, imageSize, imageSize], low: -1, high: 1, generator: &g)
    let latents = Autograd.noGrad { vae.encode(image) }
    stage("VAE encode (\(latents.shape))")

    let eps = Tensor.randn([pairs] + Array(latents.shape.dropFirst()), generator: &g)
    let timesteps = (0..<pairs).map { Float(100 + 800 * $0 / max(pairs, 1)) }
    let schedule = NoiseSchedule(SchedulerConfig())
    let xt = Tensor.concat((0..<pairs).map { p -> Tensor in
        let a = Float(schedule.alphasCumprod[Int(timesteps[p])])
        return latents * a.squareRoot() + eps.sliced(axis: 0, p..<(p + 1)) * (1 - a).squareRoot()
    }, axis: 0)
    let states = Tensor.concat((0..<pairs).map { p in embeddings.sliced(axis: 0, (p % prompts)..<(p % prompts + 1)) }, axis: 0)
    let prediction = Autograd.noGrad { unet(xt, timesteps: timesteps, encoderHiddenStates: states) }
    let errors = (0..<pairs).map { p -> Float in
        let difference = prediction.sliced(axis: 0, p..<(p + 1)) - eps.sliced(axis: 0, p..<(p + 1))
        return difference.square().mean().item
    }
    stage("U-Net (batch \(pairs))")
    let errorText = errors.map { String(format: "%.4f", $0) }.joined(separator: ", ")
    print("errors per pair: " + errorText)
    print(String(format: "total %.1f s; weights %.2f GB; peak RSS %.2f GB, peak tensors %.2f GB", Date().timeIntervalSince(start),
                 Double(weightBytes) / 1e9, Double(MemoryStatistics.peakResidentBytes) / 1e9, Double(MemoryStatistics.peakBytes) / 1e9))
}
