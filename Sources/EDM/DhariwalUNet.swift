import Foundation
import NeuralNetworks
import TensorEngine

/// EDM's `DhariwalUNet` keyword arguments, with EDM's names (in `EDMConfig`) and defaults.
public struct DhariwalUNetOptions: Equatable, Sendable {
    public var modelChannels = 192
    public var channelMult = [1, 2, 3, 4]
    public var channelMultEmb = 4
    public var numBlocks = 3
    public var attnResolutions = [32, 16, 8]
    public var dropout = 0.10
    public var labelDropout = 0.0
    public init() {}
}

/// NVlabs/edm's `DhariwalUNet` (ADM, Dhariwal & Nichol 2021, as reimplemented by EDM), with
/// EDM's module tree (`map_noise`, `map_augment`, `map_layer0`, `map_layer1`, `map_label`,
/// `enc.{res}x{res}_conv|_down|_block{i}`, `dec.{res}x{res}_in0|_in1|_up|_block{i}`, `out_norm`,
/// `out_conv`). Blocks have adaptive scale, 64 channels per attention head (so a block narrower
/// than 64 channels has no attention, as in EDM), and identity-plus-resampling skips on the
/// up/down blocks. Matches `DhariwalUNet.forward` in eval mode; dropout as `SongUNet`.
public final class DhariwalUNet: Module, EDMNetwork {
    enum Layer { case conv(EDMConv2d), block(EDMUNetBlock) }

    public let imgResolution: Int, inChannels: Int, outChannels: Int, labelDim: Int, augmentDim: Int
    public let options: DhariwalUNetOptions
    let mapNoise: EDMPositionalEmbedding
    let mapAugment: EDMLinear?, mapLayer0: EDMLinear, mapLayer1: EDMLinear, mapLabel: EDMLinear?
    let encoder: [Layer]
    let decoder: [EDMUNetBlock]
    let outNorm: GroupNorm, outConv: EDMConv2d

    /// Checks what torch would fail on (group norms that cannot split their channels, odd widths).
    public static func validate(_ o: DhariwalUNetOptions, imgResolution: Int, inChannels: Int) -> (field: String, message: String)? {
        guard o.modelChannels > 0, o.modelChannels % 2 == 0 else { return ("model_channels", "must be positive and even, got \(o.modelChannels)") }
        guard !o.channelMult.isEmpty, o.channelMult.allSatisfy({ $0 > 0 }) else { return ("channel_mult", "must be positive and non-empty, got \(o.channelMult)") }
        guard o.channelMultEmb > 0 else { return ("channel_mult_emb", "must be positive, got \(o.channelMultEmb)") }
        guard o.numBlocks >= 0 else { return ("num_blocks", "must be >= 0, got \(o.numBlocks)") }
        guard (0.0...1.0).contains(o.dropout) else { return ("dropout", "must be in [0, 1], got \(o.dropout)") }
        guard (0.0...1.0).contains(o.labelDropout) else { return ("label_dropout", "must be in [0, 1], got \(o.labelDropout)") }
        guard imgResolution % (1 << (o.channelMult.count - 1)) == 0 else {
            return ("img_resolution", "\(imgResolution) does not halve \(o.channelMult.count - 1) times (channel_mult \(o.channelMult))")
        }
        // Attention heads of 64 channels must divide the block width (EDM's reshape needs it).
        for mult in o.channelMult {
            let c = o.modelChannels * mult, heads = c / 64
            if heads > 0 && c % heads != 0 {
                return ("model_channels", "\(o.modelChannels) with channel_mult \(o.channelMult) gives \(c)-channel blocks, which \(heads) attention heads of EDM's 64 channels each do not divide")
            }
        }
        var norms: [Int] = []
        var cout = inChannels
        var skips: [Int] = []
        for (level, mult) in o.channelMult.enumerated() {
            if level == 0 { cout = o.modelChannels * mult } else { norms += [cout, cout] }
            skips.append(cout)
            for _ in 0..<o.numBlocks { norms += [cout, o.modelChannels * mult]; cout = o.modelChannels * mult; skips.append(cout) }
        }
        for (level, mult) in o.channelMult.enumerated().reversed() {
            norms += level == o.channelMult.count - 1 ? [cout, cout, cout, cout] : [cout, cout]
            for _ in 0...o.numBlocks {
                let cin = cout + skips.removeLast()
                cout = o.modelChannels * mult
                norms += [cin, cout]
            }
        }
        norms.append(cout)
        for c in Set(norms) where EDMGroupNorm.groups(channels: c) == nil {
            return ("model_channels", "\(o.modelChannels) with channel_mult \(o.channelMult) gives a \(c)-channel group norm, which EDM's GroupNorm (min(32, C/4) groups) cannot split")
        }
        return nil
    }

    public init(imgResolution: Int, inChannels: Int, outChannels: Int, labelDim: Int = 0, augmentDim: Int = 0,
                options o: DhariwalUNetOptions = DhariwalUNetOptions(), seed: UInt64 = 0) {
        if let problem = Self.validate(o, imgResolution: imgResolution, inChannels: inChannels) {
            preconditionFailure("DhariwalUNet: \(problem.field): \(problem.message)")
        }
        self.imgResolution = imgResolution
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.labelDim = labelDim
        self.augmentDim = augmentDim
        options = o
        var g = RandomGenerator(seed: seed)
        let embChannels = o.modelChannels * o.channelMultEmb
        let third = Float((1.0 / 3).squareRoot())
        let initSpec = EDMInit(.kaimingUniform, weight: third, bias: third)
        let initZero = EDMInit(.kaimingUniform, weight: 0, bias: 0)
        var block = EDMUNetBlock.Options()
        block.channelsPerHead = 64
        block.dropout = Float(o.dropout)
        block.initSpec = initSpec
        block.initZero = initZero

        mapNoise = EDMPositionalEmbedding(numChannels: o.modelChannels)
        mapAugment = augmentDim > 0 ? EDMLinear(augmentDim, o.modelChannels, bias: false, init: initZero, generator: &g) : nil
        mapLayer0 = EDMLinear(o.modelChannels, embChannels, init: initSpec, generator: &g)
        mapLayer1 = EDMLinear(embChannels, embChannels, init: initSpec, generator: &g)
        mapLabel = labelDim > 0
            ? EDMLinear(labelDim, embChannels, bias: false, init: EDMInit(.kaimingNormal, weight: Float(Double(labelDim).squareRoot())), generator: &g)
            : nil

        let enc = EDMModuleDict()
        var encoder: [Layer] = []
        var skips: [Int] = []
        var cout = inChannels
        for (level, mult) in o.channelMult.enumerated() {
            let res = imgResolution >> level
            let name = "\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = o.modelChannels * mult
                let conv = EDMConv2d(cin, cout, kernel: 3, init: initSpec, generator: &g)
                enc.add("\(name)_conv", conv); encoder.append(.conv(conv))
            } else {
                var down = block; down.down = true
                let b = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: down, generator: &g)
                enc.add("\(name)_down", b); encoder.append(.block(b))
            }
            skips.append(cout)
            for idx in 0..<o.numBlocks {
                let cin = cout
                cout = o.modelChannels * mult
                var opts = block; opts.attention = o.attnResolutions.contains(res)
                let b = EDMUNetBlock(in: cin, out: cout, emb: embChannels, options: opts, generator: &g)
                enc.add("\(name)_block\(idx)", b); encoder.append(.block(b)); skips.append(cout)
            }
        }

        let dec = EDMModuleDict()
        var decoder: [EDMUNetBlock] = []
        for (level, mult) in o.channelMult.enumerated().reversed() {
            let res = imgResolution >> level
            let name = "\(res)x\(res)"
            if level == o.channelMult.count - 1 {
                var attn = block; attn.attention = true
                let in0 = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: attn, generator: &g)
                let in1 = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: block, generator: &g)
                dec.add("\(name)_in0", in0); dec.add("\(name)_in1", in1); decoder += [in0, in1]
            } else {
                var up = block; up.up = true
                let b = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: up, generator: &g)
                dec.add("\(name)_up", b); decoder.append(b)
            }
            for idx in 0...o.numBlocks {
                let cin = cout + skips.removeLast()
                cout = o.modelChannels * mult
                var opts = block; opts.attention = o.attnResolutions.contains(res)
                let b = EDMUNetBlock(in: cin, out: cout, emb: embChannels, options: opts, generator: &g)
                dec.add("\(name)_block\(idx)", b); decoder.append(b)
            }
        }
        self.encoder = encoder
        self.decoder = decoder
        outNorm = EDMGroupNorm.make(channels: cout, eps: 1e-5)
        outConv = EDMConv2d(cout, outChannels, kernel: 3, init: initZero, generator: &g)
        super.init()
        child("map_noise", mapNoise)
        if let mapAugment { child("map_augment", mapAugment) }
        child("map_layer0", mapLayer0)
        child("map_layer1", mapLayer1)
        if let mapLabel { child("map_label", mapLabel) }
        child("enc", enc)
        child("dec", dec)
        child("out_norm", outNorm)
        child("out_conv", outConv)
    }

    public func callAsFunction(_ input: Tensor, noiseLabels: [Float], classLabels: Tensor?, augmentLabels: Tensor?,
                               dropout: EDMDropout? = nil) -> Tensor {
        let n = input.shape[0]
        precondition(input.rank == 4 && input.shape[1] == inChannels,
                     "DhariwalUNet: input \(input.shape), expected [N, \(inChannels), H, W]")
        precondition(noiseLabels.count == n, "DhariwalUNet: \(noiseLabels.count) noise labels for batch \(n)")
        var emb = mapNoise(noiseLabels)  // [cos, sin], not swapped
        if let mapAugment, let augmentLabels {
            precondition(augmentLabels.shape == [n, augmentDim], "DhariwalUNet: augment labels \(augmentLabels.shape), expected [\(n), \(augmentDim)]")
            emb = emb + mapAugment(augmentLabels)
        }
        emb = mapLayer0(emb).silu()
        emb = mapLayer1(emb)
        if let mapLabel {
            guard var labels = classLabels else { preconditionFailure("DhariwalUNet: class labels are required (label_dim \(labelDim))") }
            precondition(labels.rank == 2 && labels.shape[1] == labelDim && (labels.shape[0] == n || labels.shape[0] == 1),
                         "DhariwalUNet: class labels \(labels.shape), expected [\(n), \(labelDim)]")
            if let dropout, options.labelDropout > 0 {
                labels = labels * (1 - Tensor.rand([n, 1], generator: &dropout.generator).less(Float(options.labelDropout)))
            }
            emb = emb + mapLabel(labels)
        } else {
            precondition(classLabels == nil, "DhariwalUNet: class labels given but label_dim is 0")
        }
        emb = emb.silu()

        var skips: [Tensor] = []
        var x = input
        for layer in encoder {
            switch layer {
            case .conv(let c): x = c(x)
            case .block(let b): x = b(x, emb, dropout: dropout)
            }
            skips.append(x)
        }
        for b in decoder {
            if x.shape[1] != b.inChannels { x = Tensor.concat([x, skips.removeLast()], axis: 1) }
            x = b(x, emb, dropout: dropout)
        }
        return outConv(outNorm.withSiLU(x))
    }
}
