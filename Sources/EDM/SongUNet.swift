import Foundation
import NeuralNetworks
import TensorEngine

/// The network under a preconditioning: F(x, c_noise, class, augment). `SongUNet` and
/// `DhariwalUNet` are EDM's two.
public protocol EDMNetwork: Module {
    var imgResolution: Int { get }
    var inChannels: Int { get }
    var outChannels: Int { get }
    var labelDim: Int { get }
    var augmentDim: Int { get }
    /// `x` [N, in, res, res]; `noiseLabels` one per item; `classLabels` [N or 1, label_dim] (required
    /// when label_dim > 0); `augmentLabels` [N, augment_dim] or nil (then the augmentation
    /// embedding is skipped, as EDM does). With `dropout`, dropout and label dropout are applied.
    func callAsFunction(_ x: Tensor, noiseLabels: [Float], classLabels: Tensor?, augmentLabels: Tensor?,
                        dropout: EDMDropout?) -> Tensor
}

/// EDM's `SongUNet` keyword arguments, with EDM's names (in `EDMConfig`) and defaults.
public struct SongUNetOptions: Equatable, Sendable {
    public var modelChannels = 128
    public var channelMult = [1, 2, 2, 2]
    public var channelMultEmb = 4
    public var numBlocks = 4
    public var attnResolutions = [16]
    public var dropout = 0.10
    public var labelDropout = 0.0
    /// "positional" (DDPM++) or "fourier" (NCSN++).
    public var embeddingType = "positional"
    public var channelMultNoise = 1
    /// "standard", "skip" or "residual".
    public var encoderType = "standard"
    /// "standard" or "skip".
    public var decoderType = "standard"
    public var resampleFilter: [Float] = [1, 1]
    public init() {}
}

/// A named, ordered container of modules (torch.nn.ModuleDict): only for the checkpoint keys.
final class EDMModuleDict: Module {
    func add(_ name: String, _ m: Module) { child(name, m) }
}

/// NVlabs/edm's `SongUNet` (DDPM++ / NCSN++, Song et al. 2021, as reimplemented by EDM), with
/// EDM's module tree (`map_noise`, `map_label`, `map_augment`, `map_layer0`, `map_layer1`,
/// `enc.{res}x{res}_conv|_down|_block{i}|_aux_down|_aux_skip|_aux_residual`,
/// `dec.{res}x{res}_in0|_in1|_up|_block{i}|_aux_up|_aux_norm|_aux_conv`) and every option of
/// EDM's constructor. Matches `SongUNet.forward` in eval mode (dropout off); in a training pass
/// (`dropout` given) dropout and label dropout draw from our generator, so their masks differ
/// from torch's. Computation is float32 (EDM's `use_fp16` applies only on CUDA).
public final class SongUNet: Module, EDMNetwork {
    enum EncoderLayer { case conv(EDMConv2d), block(EDMUNetBlock), auxDown(EDMConv2d), auxSkip(EDMConv2d), auxResidual(EDMConv2d) }
    enum DecoderLayer { case block(EDMUNetBlock), auxUp(EDMConv2d), auxNorm(GroupNorm), auxConv(EDMConv2d) }

    public let imgResolution: Int, inChannels: Int, outChannels: Int, labelDim: Int, augmentDim: Int
    public let options: SongUNetOptions
    let mapNoise: Module
    let mapLabel: EDMLinear?, mapAugment: EDMLinear?, mapLayer0: EDMLinear, mapLayer1: EDMLinear
    let encoder: [EncoderLayer]
    let decoder: [DecoderLayer]

    /// Checks what EDM's constructor asserts and what torch would fail on later (group norms that
    /// cannot split their channels, odd embedding widths); the message names the option.
    public static func validate(_ o: SongUNetOptions, imgResolution: Int, inChannels: Int) -> (field: String, message: String)? {
        guard ["positional", "fourier"].contains(o.embeddingType) else {
            return ("embedding_type", "'\(o.embeddingType)' must be 'positional' or 'fourier'")
        }
        guard ["standard", "skip", "residual"].contains(o.encoderType) else {
            return ("encoder_type", "'\(o.encoderType)' must be 'standard', 'skip' or 'residual'")
        }
        guard ["standard", "skip"].contains(o.decoderType) else { return ("decoder_type", "'\(o.decoderType)' must be 'standard' or 'skip'") }
        guard o.modelChannels > 0 else { return ("model_channels", "must be positive, got \(o.modelChannels)") }
        guard !o.channelMult.isEmpty, o.channelMult.allSatisfy({ $0 > 0 }) else { return ("channel_mult", "must be positive and non-empty, got \(o.channelMult)") }
        guard o.channelMultEmb > 0 else { return ("channel_mult_emb", "must be positive, got \(o.channelMultEmb)") }
        guard o.channelMultNoise > 0 else { return ("channel_mult_noise", "must be positive, got \(o.channelMultNoise)") }
        guard o.numBlocks >= 0 else { return ("num_blocks", "must be >= 0, got \(o.numBlocks)") }
        let noise = o.modelChannels * o.channelMultNoise
        guard noise % 2 == 0, noise >= 4 || o.embeddingType == "fourier" else {
            return ("channel_mult_noise", "model_channels * channel_mult_noise = \(noise) must be even (and at least 4 for the positional embedding)")
        }
        guard !o.resampleFilter.isEmpty, o.resampleFilter.reduce(0, +) != 0 else {
            return ("resample_filter", "\(o.resampleFilter) must be non-empty with a non-zero sum")
        }
        guard (0.0...1.0).contains(o.dropout) else { return ("dropout", "must be in [0, 1], got \(o.dropout)") }
        guard (0.0...1.0).contains(o.labelDropout) else { return ("label_dropout", "must be in [0, 1], got \(o.labelDropout)") }
        guard imgResolution % (1 << (o.channelMult.count - 1)) == 0 else {
            return ("img_resolution", "\(imgResolution) does not halve \(o.channelMult.count - 1) times (channel_mult \(o.channelMult))")
        }
        // Every group norm's channel count, as the constructor makes them.
        var norms: [Int] = []
        var cout = inChannels
        var skips: [Int] = []
        for (level, mult) in o.channelMult.enumerated() {
            if level == 0 { cout = o.modelChannels; skips.append(cout) } else { norms += [cout, cout]; skips.append(cout) }
            for _ in 0..<o.numBlocks { norms += [cout, o.modelChannels * mult]; cout = o.modelChannels * mult; skips.append(cout) }
        }
        for (level, mult) in o.channelMult.enumerated().reversed() {
            norms += level == o.channelMult.count - 1 ? [cout, cout, cout, cout] : [cout, cout]
            for _ in 0...o.numBlocks {
                let cin = cout + skips.removeLast()
                cout = o.modelChannels * mult
                norms += [cin, cout]
            }
            if o.decoderType == "skip" || level == 0 { norms.append(cout) }
        }
        for c in Set(norms) where EDMGroupNorm.groups(channels: c) == nil {
            return ("model_channels", "\(o.modelChannels) with channel_mult \(o.channelMult) gives a \(c)-channel group norm, which EDM's GroupNorm (min(32, C/4) groups) cannot split")
        }
        return nil
    }

    public init(imgResolution: Int, inChannels: Int, outChannels: Int, labelDim: Int = 0, augmentDim: Int = 0,
                options o: SongUNetOptions = SongUNetOptions(), seed: UInt64 = 0) {
        if let problem = Self.validate(o, imgResolution: imgResolution, inChannels: inChannels) {
            preconditionFailure("SongUNet: \(problem.field): \(problem.message)")
        }
        self.imgResolution = imgResolution
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.labelDim = labelDim
        self.augmentDim = augmentDim
        options = o
        var g = RandomGenerator(seed: seed)
        let embChannels = o.modelChannels * o.channelMultEmb
        let noiseChannels = o.modelChannels * o.channelMultNoise
        let initSpec = EDMInit(.xavierUniform)
        let initZero = EDMInit(.xavierUniform, weight: 1e-5)
        let initAttn = EDMInit(.xavierUniform, weight: Float(0.2.squareRoot()))
        var block = EDMUNetBlock.Options()
        block.numHeads = 1
        block.dropout = Float(o.dropout)
        block.skipScale = Float(0.5.squareRoot())
        block.eps = 1e-6
        block.resampleFilter = o.resampleFilter
        block.resampleProj = true
        block.adaptiveScale = false
        block.initSpec = initSpec
        block.initZero = initZero
        block.initAttn = initAttn

        // Mapping.
        mapNoise = o.embeddingType == "positional"
            ? EDMPositionalEmbedding(numChannels: noiseChannels, endpoint: true)
            : EDMFourierEmbedding(numChannels: noiseChannels, generator: &g)
        mapLabel = labelDim > 0 ? EDMLinear(labelDim, noiseChannels, init: initSpec, generator: &g) : nil
        mapAugment = augmentDim > 0 ? EDMLinear(augmentDim, noiseChannels, bias: false, init: initSpec, generator: &g) : nil
        mapLayer0 = EDMLinear(noiseChannels, embChannels, init: initSpec, generator: &g)
        mapLayer1 = EDMLinear(embChannels, embChannels, init: initSpec, generator: &g)

        // Encoder.
        let enc = EDMModuleDict()
        var encoder: [EncoderLayer] = []
        var skips: [Int] = []
        var cout = inChannels, caux = inChannels
        for (level, mult) in o.channelMult.enumerated() {
            let res = imgResolution >> level
            let name = "\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = o.modelChannels
                let conv = EDMConv2d(cin, cout, kernel: 3, init: initSpec, generator: &g)
                enc.add("\(name)_conv", conv); encoder.append(.conv(conv)); skips.append(cout)
            } else {
                var down = block; down.down = true
                let b = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: down, generator: &g)
                enc.add("\(name)_down", b); encoder.append(.block(b)); skips.append(cout)
                if o.encoderType == "skip" {
                    let auxDown = EDMConv2d(caux, caux, kernel: 0, down: true, resampleFilter: o.resampleFilter,
                                            init: initSpec, generator: &g)
                    let auxSkip = EDMConv2d(caux, cout, kernel: 1, init: initSpec, generator: &g)
                    enc.add("\(name)_aux_down", auxDown); encoder.append(.auxDown(auxDown))
                    enc.add("\(name)_aux_skip", auxSkip); encoder.append(.auxSkip(auxSkip))
                }
                if o.encoderType == "residual" {
                    let r = EDMConv2d(caux, cout, kernel: 3, down: true, resampleFilter: o.resampleFilter, fusedResample: true,
                                      init: initSpec, generator: &g)
                    enc.add("\(name)_aux_residual", r); encoder.append(.auxResidual(r))
                    caux = cout
                }
            }
            for idx in 0..<o.numBlocks {
                let cin = cout
                cout = o.modelChannels * mult
                var opts = block; opts.attention = o.attnResolutions.contains(res)
                let b = EDMUNetBlock(in: cin, out: cout, emb: embChannels, options: opts, generator: &g)
                enc.add("\(name)_block\(idx)", b); encoder.append(.block(b)); skips.append(cout)
            }
        }

        // Decoder.
        let dec = EDMModuleDict()
        var decoder: [DecoderLayer] = []
        for (level, mult) in o.channelMult.enumerated().reversed() {
            let res = imgResolution >> level
            let name = "\(res)x\(res)"
            if level == o.channelMult.count - 1 {
                var attn = block; attn.attention = true
                let in0 = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: attn, generator: &g)
                let in1 = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: block, generator: &g)
                dec.add("\(name)_in0", in0); decoder.append(.block(in0))
                dec.add("\(name)_in1", in1); decoder.append(.block(in1))
            } else {
                var up = block; up.up = true
                let b = EDMUNetBlock(in: cout, out: cout, emb: embChannels, options: up, generator: &g)
                dec.add("\(name)_up", b); decoder.append(.block(b))
            }
            for idx in 0...o.numBlocks {
                let cin = cout + skips.removeLast()
                cout = o.modelChannels * mult
                var opts = block; opts.attention = idx == o.numBlocks && o.attnResolutions.contains(res)
                let b = EDMUNetBlock(in: cin, out: cout, emb: embChannels, options: opts, generator: &g)
                dec.add("\(name)_block\(idx)", b); decoder.append(.block(b))
            }
            if o.decoderType == "skip" || level == 0 {
                if o.decoderType == "skip" && level < o.channelMult.count - 1 {
                    let auxUp = EDMConv2d(outChannels, outChannels, kernel: 0, up: true, resampleFilter: o.resampleFilter,
                                          init: initSpec, generator: &g)
                    dec.add("\(name)_aux_up", auxUp); decoder.append(.auxUp(auxUp))
                }
                let norm = EDMGroupNorm.make(channels: cout, eps: 1e-6)
                let conv = EDMConv2d(cout, outChannels, kernel: 3, init: initZero, generator: &g)
                dec.add("\(name)_aux_norm", norm); decoder.append(.auxNorm(norm))
                dec.add("\(name)_aux_conv", conv); decoder.append(.auxConv(conv))
            }
        }
        self.encoder = encoder
        self.decoder = decoder
        super.init()
        child("map_noise", mapNoise)
        if let mapLabel { child("map_label", mapLabel) }
        if let mapAugment { child("map_augment", mapAugment) }
        child("map_layer0", mapLayer0)
        child("map_layer1", mapLayer1)
        child("enc", enc)
        child("dec", dec)
    }

    public func callAsFunction(_ input: Tensor, noiseLabels: [Float], classLabels: Tensor?, augmentLabels: Tensor?,
                               dropout: EDMDropout? = nil) -> Tensor {
        let n = input.shape[0]
        precondition(input.rank == 4 && input.shape[1] == inChannels,
                     "SongUNet: input \(input.shape), expected [N, \(inChannels), H, W]")
        precondition(noiseLabels.count == n, "SongUNet: \(noiseLabels.count) noise labels for batch \(n)")

        // Mapping: the embedding's halves swapped to [sin, cos].
        let raw = (mapNoise as? EDMPositionalEmbedding)?(noiseLabels) ?? (mapNoise as! EDMFourierEmbedding)(noiseLabels)
        let half = raw.shape[1] / 2
        var emb = Tensor.concat([raw.sliced(axis: 1, half..<(2 * half)), raw.sliced(axis: 1, 0..<half)], axis: 1)
        if let mapLabel {
            guard var labels = classLabels else { preconditionFailure("SongUNet: class labels are required (label_dim \(labelDim))") }
            precondition(labels.rank == 2 && labels.shape[1] == labelDim && (labels.shape[0] == n || labels.shape[0] == 1),
                         "SongUNet: class labels \(labels.shape), expected [\(n), \(labelDim)]")
            if let dropout, options.labelDropout > 0 {
                // EDM: labels * (rand([N, 1]) >= label_dropout).
                labels = labels * (1 - Tensor.rand([n, 1], generator: &dropout.generator).less(Float(options.labelDropout)))
            }
            emb = emb + mapLabel(labels * Float(Double(labelDim).squareRoot()))
        } else {
            precondition(classLabels == nil, "SongUNet: class labels given but label_dim is 0")
        }
        if let mapAugment, let augmentLabels {
            precondition(augmentLabels.shape == [n, augmentDim], "SongUNet: augment labels \(augmentLabels.shape), expected [\(n), \(augmentDim)]")
            emb = emb + mapAugment(augmentLabels)
        }
        emb = mapLayer0(emb).silu()
        emb = mapLayer1(emb).silu()

        // Encoder.
        var skips: [Tensor] = []
        var x = input, aux = input
        for layer in encoder {
            switch layer {
            case .auxDown(let c): aux = c(aux)
            case .auxSkip(let c):
                x = x + c(aux)
                skips[skips.count - 1] = x
            case .auxResidual(let c):
                x = (x + c(aux)) / Float(2.0.squareRoot())
                skips[skips.count - 1] = x
                aux = x
            case .conv(let c):
                x = c(x); skips.append(x)
            case .block(let b):
                x = b(x, emb, dropout: dropout); skips.append(x)
            }
        }

        // Decoder.
        var out: Tensor? = nil, tmp: Tensor? = nil
        for layer in decoder {
            switch layer {
            case .auxUp(let c): out = c(out!)
            case .auxNorm(let norm): tmp = norm.withSiLU(x)  // SiLU of aux_conv's input, fused
            case .auxConv(let c):
                let t = c(tmp!)
                out = out.map { t + $0 } ?? t
            case .block(let b):
                if x.shape[1] != b.inChannels { x = Tensor.concat([x, skips.removeLast()], axis: 1) }
                x = b(x, emb, dropout: dropout)
            }
        }
        return out!
    }
}
