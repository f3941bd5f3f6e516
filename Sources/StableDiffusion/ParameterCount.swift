import Foundation

/// Parameter counts computed from a config alone, without allocating weights (an SD-sized U-Net
/// is 3.4 GB of Float32). They follow the same construction as the modules; the tests check them
/// against `parameterCount` of built tiny models and against diffusers' counts for SD 1.5 / 2.
enum ParameterArithmetic {
    static func conv(_ i: Int, _ o: Int, _ k: Int) -> Int { o * i * k * k + o }
    static func linear(_ i: Int, _ o: Int, bias: Bool = true) -> Int { o * i + (bias ? o : 0) }
    static func norm(_ c: Int) -> Int { 2 * c }

    static func resnet(_ i: Int, _ o: Int, temb: Int?) -> Int {
        norm(i) + conv(i, o, 3) + (temb.map { linear($0, o) } ?? 0) + norm(o) + conv(o, o, 3) + (i != o ? conv(i, o, 1) : 0)
    }

    static func transformer(_ c: Int, context: Int) -> Int {
        let attn1 = 3 * linear(c, c, bias: false) + linear(c, c)
        let attn2 = linear(c, c, bias: false) + 2 * linear(context, c, bias: false) + linear(c, c)
        let ff = linear(c, 8 * c) + linear(4 * c, c)
        return norm(c) + 2 * linear(c, c) + 3 * norm(c) + attn1 + attn2 + ff
    }

    /// The VAE mid block's single-head attention (biased q, k, v, out).
    static func spatialAttention(_ c: Int) -> Int { norm(c) + 4 * linear(c, c) }
}

extension UNet2DConditionConfig {
    /// The number of parameters `UNet2DConditionModel(config:)` has, computed without building it.
    public var parameterCount: Int {
        typealias P = ParameterArithmetic
        let ch = blockOutChannels, tdim = timeEmbedDim, n = ch.count
        var total = P.conv(inChannels, ch[0], 3) + P.linear(ch[0], tdim) + P.linear(tdim, tdim)
        var outC = ch[0]
        for i in 0..<n {
            let inC = outC
            outC = ch[i]
            for j in 0..<layersPerBlock {
                total += P.resnet(j == 0 ? inC : outC, outC, temb: tdim)
                if downBlockTypes[i].hasCrossAttention { total += P.transformer(outC, context: crossAttentionDim[i]) }
            }
            if i < n - 1 { total += P.conv(outC, outC, 3) }
        }
        total += 2 * P.resnet(ch[n - 1], ch[n - 1], temb: tdim) + P.transformer(ch[n - 1], context: crossAttentionDim[n - 1])
        let rev = Array(ch.reversed()), revContext = Array(crossAttentionDim.reversed())
        outC = rev[0]
        for i in 0..<n {
            let prev = outC
            outC = rev[i]
            let inC = rev[Swift.min(i + 1, n - 1)], layers = layersPerBlock + 1
            for j in 0..<layers {
                total += P.resnet((j == 0 ? prev : outC) + (j == layers - 1 ? inC : outC), outC, temb: tdim)
                if upBlockTypes[i].hasCrossAttention { total += P.transformer(outC, context: revContext[i]) }
            }
            if i < n - 1 { total += P.conv(outC, outC, 3) }
        }
        return total + P.norm(ch[0]) + P.conv(ch[0], outChannels, 3)
    }
}

extension AutoencoderKLConfig {
    /// The number of parameters of the encoder side (encoder and quant_conv): what `encode` uses.
    public var encoderParameterCount: Int {
        typealias P = ParameterArithmetic
        let ch = blockOutChannels, n = ch.count, z = latentChannels
        var total = P.conv(inChannels, ch[0], 3)
        var outC = ch[0]
        for i in 0..<n {
            let inC = outC
            outC = ch[i]
            for j in 0..<layersPerBlock { total += P.resnet(j == 0 ? inC : outC, outC, temb: nil) }
            if i < n - 1 { total += P.conv(outC, outC, 3) }
        }
        total += midBlock(ch[n - 1]) + P.norm(ch[n - 1]) + P.conv(ch[n - 1], 2 * z, 3)
        return total + (useQuantConv ? P.conv(2 * z, 2 * z, 1) : 0)
    }

    /// The number of parameters `AutoencoderKL(config:)` has (encoder, decoder and both 1x1
    /// convolutions), computed without building it.
    public var parameterCount: Int {
        typealias P = ParameterArithmetic
        let rev = Array(blockOutChannels.reversed()), n = rev.count, z = latentChannels
        var total = encoderParameterCount + P.conv(z, rev[0], 3) + midBlock(rev[0])
        var outC = rev[0]
        for i in 0..<n {
            let prev = outC
            outC = rev[i]
            for j in 0..<(layersPerBlock + 1) { total += P.resnet(j == 0 ? prev : outC, outC, temb: nil) }
            if i < n - 1 { total += P.conv(outC, outC, 3) }
        }
        total += P.norm(rev[n - 1]) + P.conv(rev[n - 1], outChannels, 3)
        return total + (usePostQuantConv ? P.conv(z, z, 1) : 0)
    }

    private func midBlock(_ c: Int) -> Int {
        2 * ParameterArithmetic.resnet(c, c, temb: nil) + (midBlockAddAttention ? ParameterArithmetic.spatialAttention(c) : 0)
    }
}
