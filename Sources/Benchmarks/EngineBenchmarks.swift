import TensorEngine

/// The engine's benchmark cases (issue: foundation). Shapes follow the U-Nets the classifiers run:
/// batch 64 at 28x28, 14x14 and 7x7.
public enum EngineBenchmarks {
    static func filled(_ shape: [Int], seed: UInt64) -> Tensor {
        // A cheap deterministic fill (values in [-1, 1)); benchmarks need no statistical quality.
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        let values = (0..<Tensor.elementCount(shape)).map { _ -> Float in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
        return Tensor(shape: shape, values)
    }

    public static func cases(quick: Bool = false) -> [BenchmarkCase] {
        var list: [BenchmarkCase] = []
        let n = quick ? 1024 : 2048
        let gemmFlops = 2.0 * Double(n) * Double(n) * Double(n)
        list.append(BenchmarkCase(name: "sgemm_raw_\(n)", flops: gemmFlops,
                                  spec: ["op": .string("matmul"), "m": .int(n), "n": .int(n), "k": .int(n)]) {
            let a = filled([n, n], seed: 1), b = filled([n, n], seed: 2), c = Tensor.zeros([n, n])
            return { rawBLASMatmul(a, b, into: c) }
        })
        list.append(BenchmarkCase(name: "matmul_engine_\(n)", flops: gemmFlops,
                                  spec: ["op": .string("matmul"), "m": .int(n), "n": .int(n), "k": .int(n)]) {
            let a = filled([n, n], seed: 1), b = filled([n, n], seed: 2)
            return { _ = Autograd.noGrad { a.matmul(b) } }
        })
        let normals = quick ? 1 << 22 : 10_000_000
        list.append(BenchmarkCase(name: "randn_\(normals)", flops: nil,
                                  spec: ["op": .string("randn"), "n": .int(normals)]) {
            var g = RandomGenerator(seed: 1)
            return { _ = Tensor.randn([normals], generator: &g) }
        })
        list += extraCases(quick: quick)
        return list
    }
}
