/// FLOPs (2 x multiply-adds) of one UNet2DModel forward for one image: convolutions, linears and
/// attention products; normalisations and elementwise work are left out (a few percent).
enum UNetFlopCounter {
    static func conv(_ cin: Int, _ cout: Int, _ k: Int, _ h: Int, _ w: Int) -> Double {
        2 * Double(cin * cout * k * k) * Double(h * w)
    }

    static func resnet(_ cin: Int, _ cout: Int, _ h: Int, _ w: Int) -> Double {
        conv(cin, cout, 3, h, w) + conv(cout, cout, 3, h, w) + (cin != cout ? conv(cin, cout, 1, h, w) : 0)
    }

    static func attention(_ c: Int, _ h: Int, _ w: Int) -> Double {
        let l = Double(h * w)
        return 4 * 2 * Double(c * c) * l + 2 * 2 * l * l * Double(c)
    }

    static func count(config: UNet2DConfig, height: Int, width: Int) -> Double {
        let ch = config.blockOutChannels
        var h = height, w = width
        var total = conv(config.inChannels, ch[0], 3, h, w)
        var skipChannels = [ch[0]]
        var outC = ch[0]
        for (i, type) in config.downBlockTypes.enumerated() {
            let inC = outC
            outC = ch[i]
            for l in 0..<config.layersPerBlock {
                total += resnet(l == 0 ? inC : outC, outC, h, w)
                if type.hasSelfAttention { total += attention(outC, h, w) }
                skipChannels.append(outC)
            }
            if i < ch.count - 1 {
                h = (h + 2 * config.downsamplePadding - 3) / 2 + 1
                w = (w + 2 * config.downsamplePadding - 3) / 2 + 1
                total += conv(outC, outC, 3, h, w)
                skipChannels.append(outC)
            }
        }
        if config.midBlockType != nil {
            total += 2 * resnet(outC, outC, h, w) + (config.addAttention ? attention(outC, h, w) : 0)
        }
        let rev = Array(ch.reversed())
        var current = rev[0]
        for (i, type) in config.upBlockTypes.enumerated() {
            let o = rev[i]
            for _ in 0...config.layersPerBlock {
                let skip = skipChannels.removeLast()
                total += resnet(current + skip, o, h, w)
                current = o
                if type.hasSelfAttention { total += attention(o, h, w) }
            }
            if i < ch.count - 1 { h *= 2; w *= 2; total += conv(o, o, 3, h, w) }
        }
        return total + conv(ch[0], config.outChannels, 3, h, w)
    }
}
