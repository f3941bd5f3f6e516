import Foundation
import XCTest
import TensorEngine

/// Speed of conv2d on the benchmark shapes; runs only with CONV_BENCH=1 and asserts nothing
/// (timings are not tests). Use a release build: `tools/conv_bench.sh` runs it beside PyTorch.
/// CONV_BENCH_ALG=winograd|im2col|automatic picks the path (default automatic); other variables
/// below pick shapes, modes and thread counts.
final class ConvolutionBenchmark: XCTestCase {
    func testConvolutionSpeed() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["CONV_BENCH"] == "1" else { throw XCTSkip("set CONV_BENCH=1 to run the convolution benchmark") }
        let reps = Int(env["CONV_BENCH_REPS"] ?? "") ?? 10
        let alg: Conv2dAlgorithm = env["CONV_BENCH_ALG"] == "im2col" ? .im2col
            : env["CONV_BENCH_ALG"] == "winograd" ? .winograd : .automatic
        let threadList = (env["CONV_BENCH_THREADS"] ?? "1 2").split(separator: " ").compactMap { Int($0) }
        // (n, c, h, w, o, kernel, stride, padding): the three target shapes, then (CONV_BENCH_EXTRA=1)
        // shapes of the other paths, the same as tools/torch_conv_bench.py --extra.
        var allShapes: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
            (64, 32, 28, 28, 32, 3, 1, 1), (64, 64, 14, 14, 64, 3, 1, 1), (64, 128, 7, 7, 128, 3, 1, 1)]
        if env["CONV_BENCH_EXTRA"] == "1" {
            allShapes += [(64, 64, 28, 28, 64, 3, 2, 1), (64, 3, 32, 32, 32, 3, 1, 1),
                          (64, 128, 14, 14, 64, 1, 1, 0), (16, 128, 32, 32, 64, 1, 1, 0)]
        }
        // CONV_BENCH_SHAPE="n c h w o k s p" times one shape of your own instead.
        if let custom = env["CONV_BENCH_SHAPE"]?.split(separator: " ").compactMap({ Int($0) }), custom.count == 8 {
            let v = custom
            allShapes = [(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])]
        }
        // CONV_BENCH_SHAPES="0 2" picks shapes by index; CONV_BENCH_MODE=fwd|fb runs one mode only.
        let picked = (env["CONV_BENCH_SHAPES"]?.split(separator: " ").compactMap { Int($0) }) ?? Array(allShapes.indices)
        let shapes = picked.map { allShapes[$0] }
        let mode = env["CONV_BENCH_MODE"] ?? "both"
        let saved = Engine.threads
        defer { Engine.threads = saved }
        Engine.initialize()

        func median(_ body: () -> Void) -> Double {
            body(); body()
            var times: [Double] = []
            for _ in 0..<reps {
                let t = DispatchTime.now().uptimeNanoseconds
                body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9)
            }
            return times.sorted()[times.count / 2]
        }

        for threads in threadList {
            Engine.threads = threads
            let a = randomTensor([2048, 2048], seed: 1), b = randomTensor([2048, 2048], seed: 2)
            let tg = env["CONV_BENCH_SGEMM"] == "0" ? 1 : median { _ = a.matmul(b) }
            let sgemm = 2.0 * 2048 * 2048 * 2048 / tg / 1e9
            print(String(format: "swift threads=%d sgemm 2048^3 %.1f GFLOP/s", threads, sgemm))
            for (n, c, h, w, o, k, st, pad) in shapes {
                let x = randomTensor([n, c, h, w], seed: 3)
                let wt = randomTensor([o, c, k, k], seed: 4, scale: 0.1)
                let bias = randomTensor([o], seed: 5)
                let g = Conv2dGeometry(input: x.shape, weight: wt.shape, stride: (st, st), padding: (pad, pad), groups: 1)
                let fwd = mode == "fb" ? .nan : median {
                    _ = Autograd.noGrad { x.conv2d(weight: wt, bias: bias, stride: st, padding: pad, algorithm: alg) }
                }
                let ones = Tensor.ones(g.outputShape)
                let fb = mode == "fwd" ? .nan : median {
                    let xl = Tensor(shape: x.shape, storage: x.storage, requiresGrad: true)
                    let wl = Tensor(shape: wt.shape, storage: wt.storage, requiresGrad: true)
                    let bl = Tensor(shape: bias.shape, storage: bias.storage, requiresGrad: true)
                    xl.conv2d(weight: wl, bias: bl, stride: st, padding: pad, algorithm: alg).backward(ones)
                }
                let shape = "\(n)x\(c)x\(h)x\(w)->\(o) k\(k) s\(st) p\(pad)"
                print(String(format: "swift threads=%d %@ fwd %8.2f ms %7.1f GFLOP/s (%.0f%% of sgemm)   fwd+bwd %8.2f ms %7.1f GFLOP/s",
                             threads, shape.padding(toLength: 32, withPad: " ", startingAt: 0), fwd * 1e3, g.flops / fwd / 1e9,
                             100 * g.flops / fwd / 1e9 / sgemm, fb * 1e3, 3 * g.flops / fb / 1e9))
            }
        }
    }
}
