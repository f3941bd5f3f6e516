import TensorEngine

extension EngineBenchmarks {
    /// conv2d 3x3 (forward, forward+backward) at the U-Net shapes, group norm + SiLU, attention.
    static func extraCases(quick: Bool) -> [BenchmarkCase] {
        var list: [BenchmarkCase] = []
        let batch = quick ? 16 : 64
        for (c, hw) in [(32, 28), (64, 14), (128, 7)] {
            let flops = 2.0 * Double(batch * c * hw * hw) * Double(c * 9)
            let spec: [String: BenchmarkValue] = ["n": .int(batch), "c": .int(c), "o": .int(c), "h": .int(hw), "w": .int(hw),
                                                  "k": .int(3), "stride": .int(1), "padding": .int(1)]
            var fwd = spec; fwd["op"] = .string("conv2d")
            list.append(BenchmarkCase(name: "conv3x3_fwd_b\(batch)_c\(c)_\(hw)x\(hw)", flops: flops, spec: fwd) {
                let x = filled([batch, c, hw, hw], seed: 3), w = filled([c, c, 3, 3], seed: 4), b = filled([c], seed: 5)
                return { _ = Autograd.noGrad { x.conv2d(weight: w, bias: b, stride: 1, padding: 1) } }
            })
            var fb = spec; fb["op"] = .string("conv2d_fwdbwd")
            list.append(BenchmarkCase(name: "conv3x3_fwdbwd_b\(batch)_c\(c)_\(hw)x\(hw)", flops: 3 * flops, spec: fb) {
                let x = filled([batch, c, hw, hw], seed: 3), w = filled([c, c, 3, 3], seed: 4), b = filled([c], seed: 5)
                x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
                let ones = Tensor.ones([batch, c, hw, hw])
                return {
                    let y = x.conv2d(weight: w, bias: b, stride: 1, padding: 1)
                    y.backward(ones)
                    x.grad = nil; w.grad = nil; b.grad = nil
                }
            })
        }
        for (c, hw) in [(64, 28), (128, 14)] {
            list.append(BenchmarkCase(name: "groupnorm_silu_b\(batch)_c\(c)_\(hw)x\(hw)", flops: nil,
                                      spec: ["op": .string("groupnorm_silu"), "n": .int(batch), "c": .int(c), "h": .int(hw),
                                             "w": .int(hw), "groups": .int(8)]) {
                let x = filled([batch, c, hw, hw], seed: 6), w = filled([c], seed: 7), b = filled([c], seed: 8)
                return { _ = Autograd.noGrad { x.groupNormSiLU(groups: 8, weight: w, bias: b) } }
            })
        }
        for (hw, d) in [(7, 128), (14, 64)] {
            let l = hw * hw
            let flops = 4.0 * Double(batch * l * l * d)
            list.append(BenchmarkCase(name: "attention_b\(batch)_\(hw)x\(hw)_d\(d)", flops: flops,
                                      spec: ["op": .string("attention"), "b": .int(batch), "heads": .int(1), "l": .int(l), "d": .int(d)]) {
                let q = filled([batch, 1, l, d], seed: 9), k = filled([batch, 1, l, d], seed: 10), v = filled([batch, 1, l, d], seed: 11)
                return { _ = Autograd.noGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v) } }
            })
        }
        return list
    }
}
