import Diffusion
import Foundation
import StableDiffusion
import TensorEngine

/// `diffclass bench-sd --config UNET_CONFIG.json [--batch N] [--latent N] [--calls N]`: U-Net
/// calls per second of a random-weight `UNet2DConditionModel` built from a diffusers
/// `unet/config.json` (e.g. SD 2.0-base's, `Tests/StableDiffusionTests/Fixtures/configs/
/// sd2base_unet.json`: about 3.5 GB of Float32 weights), at N x N latents (default 64, i.e.
/// 512x512 images) with 77-token encoder states, without gradients. Runs one warm-up forward and
/// `--calls` timed ones (default 1), and prints calls (batch items) per second and the peak
/// resident memory. Not a test: it allocates gigabytes and takes minutes on a CPU.
func runBenchSD(_ args: inout Arguments) throws {
    guard let configPath = args.string("config") else { throw UsageError("bench-sd needs --config UNET_CONFIG.json") }
    let batch = try args.int("batch", range: 1...1024) ?? 1
    let latent = try args.int("latent", range: 8...512) ?? 64
    let timed = try args.int("calls", range: 1...1000) ?? 1
    let warmup = !args.flag("no-warmup")
    try args.finish(command: "bench-sd")
    let config = try UNet2DConditionConfig.load(URL(fileURLWithPath: configPath))
    print("bench-sd: \(configPath): \(config.parameterCount) parameters, batch \(batch), \(latent)x\(latent) latents, \(Engine.threads) threads")
    fflush(stdout)
    var t0 = Date()
    let unet = UNet2DConditionModel(config: config, seed: 0)
    print(String(format: "built in %.1f s, live tensors %.2f GB", Date().timeIntervalSince(t0), Double(MemoryStatistics.liveBytes) / 1e9))
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
