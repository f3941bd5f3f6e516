import Foundation
import NeuralNetworks
import TensorEngine

// The layers of NVlabs/edm's `training/networks.py` (Linear, Conv2d with FIR up/down-sampling,
// GroupNorm, the two noise embeddings), with EDM's parameter and buffer names and shapes, so a
// module tree of them has the same `state_dict()` keys as EDM's.

/// EDM's `weight_init`: how a layer's weight and bias are drawn, and the factors they are scaled
/// by (`init_weight`, `init_bias`). The draws come from our seeded generator, not torch's, so the
/// values differ from EDM's for the same seed; the distributions are EDM's.
public struct EDMInit: Sendable, Equatable {
    public enum Mode: String, Sendable {
        case xavierUniform = "xavier_uniform", xavierNormal = "xavier_normal"
        case kaimingUniform = "kaiming_uniform", kaimingNormal = "kaiming_normal"
    }

    public var mode: Mode
    public var weight: Float
    public var bias: Float

    public init(_ mode: Mode, weight: Float = 1, bias: Float = 0) {
        self.mode = mode
        self.weight = weight
        self.bias = bias
    }

    /// xavier_uniform: sqrt(6 / (fan_in + fan_out)) U(-1, 1); xavier_normal: sqrt(2 / (fan_in +
    /// fan_out)) N(0, 1); kaiming_uniform: sqrt(3 / fan_in) U(-1, 1); kaiming_normal:
    /// sqrt(1 / fan_in) N(0, 1); times `factor`.
    func draw(_ shape: [Int], fanIn: Int, fanOut: Int, factor: Float, generator g: inout RandomGenerator) -> Tensor {
        let fi = Float(fanIn), fo = Float(fanOut)
        if factor == 0 { return Tensor.zeros(shape) }  // EDM's init_zero (and the default zero biases)
        switch mode {
        case .xavierUniform:
            let a = (6 / (fi + fo)).squareRoot() * factor
            return Tensor.uniform(shape, low: -a, high: a, generator: &g)
        case .xavierNormal:
            return Tensor.randn(shape, std: (2 / (fi + fo)).squareRoot() * factor, generator: &g)
        case .kaimingUniform:
            let a = (3 / fi).squareRoot() * factor
            return Tensor.uniform(shape, low: -a, high: a, generator: &g)
        case .kaimingNormal:
            return Tensor.randn(shape, std: (1 / fi).squareRoot() * factor, generator: &g)
        }
    }
}

/// A module that owns buffers: tensors of the state dict that are not trained (EDM's
/// `register_buffer`: the resampling filters, the Fourier embedding's frequencies). Loading fills
/// them from the checkpoint; they are not in `namedParameters`, so optimizers leave them alone.
public protocol EDMBufferOwner: Module {
    var ownBuffers: [(name: String, tensor: Tensor)] { get }
}

extension Module {
    /// Every buffer of the tree with its dotted key (depth first, as `allParameters`).
    public func edmBuffers(prefix: String = "") -> [(key: String, tensor: Tensor)] {
        var out: [(key: String, tensor: Tensor)] = []
        if let owner = self as? EDMBufferOwner { out += owner.ownBuffers.map { (prefix + $0.name, $0.tensor) } }
        for (name, m) in children { out += m.edmBuffers(prefix: prefix + name + ".") }
        return out
    }
}

/// EDM's `Linear`: y = x W^T + b; keys `weight` [out, in] and, with `bias`, `bias` [out].
public final class EDMLinear: Module {
    public let inFeatures: Int, outFeatures: Int
    public let weightParameter: Parameter
    public var weight: Tensor { weightParameter.value }
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, init initSpec: EDMInit,
                generator g: inout RandomGenerator) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let w = initSpec.draw([outFeatures, inFeatures], fanIn: inFeatures, fanOut: outFeatures, factor: initSpec.weight, generator: &g)
        self.bias = bias ? initSpec.draw([outFeatures], fanIn: inFeatures, fanOut: outFeatures, factor: initSpec.bias, generator: &g) : nil
        weightParameter = Parameter(w, storable: true)
        super.init()
        register("weight", weightParameter)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// EDM's `Conv2d`: an optional k x k convolution (`kernel` 0: none, only the resampling) with
/// optional up- or down-sampling by 2 through the FIR filter `resample_filter` (f f^T / (sum f)^2
/// of the 1-D taps, a buffer [1, 1, n, n] present only when `up` or `down`). Unfused: up-sample
/// (transposed depthwise convolution with 4 f, padding (n-1)/2), or down-sample (depthwise, stride
/// 2, same padding), then the convolution with padding k/2. Fused (`fused_resample`, with a
/// kernel): up-sample without padding excess then convolve, or convolve with padding k/2 + (n-1)/2
/// then down-sample without padding: EDM's exact order and paddings. Keys `weight`
/// [out, in, k, k], `bias` [out], `resample_filter`.
public final class EDMConv2d: Module, EDMBufferOwner {
    public let inChannels: Int, outChannels: Int, kernel: Int
    public let up: Bool, down: Bool, fusedResample: Bool
    public let weightParameter: Parameter?
    public var weight: Tensor? { weightParameter?.value }
    public let bias: Tensor?
    /// [1, 1, n, n] when up- or down-sampling.
    public let resampleFilter: Tensor?

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, bias: Bool = true, up: Bool = false, down: Bool = false,
                resampleFilter taps: [Float] = [1, 1], fusedResample: Bool = false, init initSpec: EDMInit,
                generator g: inout RandomGenerator) {
        precondition(!(up && down), "EDMConv2d: up and down together")
        precondition(!taps.isEmpty, "EDMConv2d: empty resample filter")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.up = up
        self.down = down
        self.fusedResample = fusedResample
        let fanIn = inChannels * kernel * kernel, fanOut = outChannels * kernel * kernel
        if kernel > 0 {
            let w = initSpec.draw([outChannels, inChannels, kernel, kernel], fanIn: fanIn, fanOut: fanOut, factor: initSpec.weight, generator: &g)
            weightParameter = Parameter(w, storable: true)
            self.bias = bias ? initSpec.draw([outChannels], fanIn: fanIn, fanOut: fanOut, factor: initSpec.bias, generator: &g) : nil
        } else {
            weightParameter = nil
            self.bias = nil
        }
        if up || down {
            // float32 as EDM: f.ger(f) / f.sum().square().
            let n = taps.count
            let sum = taps.reduce(0, +)
            var values = [Float](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { values[i * n + j] = (taps[i] * taps[j]) / (sum * sum) } }
            resampleFilter = Tensor(shape: [1, 1, n, n], values)
        } else {
            resampleFilter = nil
        }
        super.init()
        if let weightParameter { register("weight", weightParameter) }
        if let b = self.bias { parameter("bias", b) }
    }

    public var ownBuffers: [(name: String, tensor: Tensor)] {
        resampleFilter.map { [("resample_filter", $0)] } ?? []
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let w = weight
        var x = input
        let wPad = w == nil ? 0 : kernel / 2
        let f = resampleFilter.map { $0.reshaped([$0.shape[2], $0.shape[3]]) }
        let fPad = f.map { ($0.shape[0] - 1) / 2 } ?? 0
        if fusedResample && up, let w, let f {
            x = x.depthwiseConvTranspose2d(filter: f * 4, stride: 2, padding: Swift.max(fPad - wPad, 0))
            x = x.conv2d(weight: w, padding: Swift.max(wPad - fPad, 0))
        } else if fusedResample && down, let w, let f {
            x = x.conv2d(weight: w, padding: wPad + fPad)
            x = x.depthwiseConv2d(filter: f, stride: 2)
        } else {
            if up, let f { x = x.depthwiseConvTranspose2d(filter: f * 4, stride: 2, padding: fPad) }
            if down, let f { x = x.depthwiseConv2d(filter: f, stride: 2, padding: fPad) }
            if let w {
                // The bias inside the convolution: the same sum as EDM's conv then add.
                return x.conv2d(weight: w, bias: bias, padding: wPad)
            }
        }
        if let bias { x = x + bias.reshaped([1, bias.count, 1, 1]) }
        return x
    }
}

/// EDM's `GroupNorm`: min(32, C / 4) groups (EDM's `num_groups=32, min_channels_per_group=4`).
public enum EDMGroupNorm {
    /// The group count EDM uses for `channels`, or nil where torch's group_norm would fail (no
    /// group, or channels not divisible by the count).
    public static func groups(channels: Int, numGroups: Int = 32, minChannelsPerGroup: Int = 4) -> Int? {
        let g = Swift.min(numGroups, channels / minChannelsPerGroup)
        return g > 0 && channels % g == 0 ? g : nil
    }

    /// A `GroupNorm` (keys `weight`, `bias`) with EDM's group count. Channel counts EDM cannot
    /// normalise are rejected by the networks' validation before this is called.
    public static func make(channels: Int, eps: Float) -> GroupNorm {
        guard let g = groups(channels: channels) else {
            preconditionFailure("EDMGroupNorm: \(channels) channels cannot be split into min(32, C/4) groups")
        }
        return GroupNorm(groups: g, channels: channels, eps: eps)
    }
}

/// EDM's `PositionalEmbedding` (DDPM++, ADM): for noise label x and i < C/2, frequency
/// (1/max_positions)^(i / (C/2 - endpoint)), giving [cos(x f), sin(x f)], all in float32 as EDM.
/// No parameters.
public final class EDMPositionalEmbedding: Module {
    public let numChannels: Int, maxPositions: Int, endpoint: Bool
    let freqs: [Float]

    public init(numChannels: Int, maxPositions: Int = 10000, endpoint: Bool = false) {
        self.numChannels = numChannels
        self.maxPositions = maxPositions
        self.endpoint = endpoint
        let half = numChannels / 2
        let base = Float(1 / Double(maxPositions))
        let denominator = Float(half - (endpoint ? 1 : 0))
        freqs = (0..<half).map { Foundation.pow(base, Float($0) / denominator) }
        super.init()
    }

    /// [N, C]: cos then sin.
    public func callAsFunction(_ noiseLabels: [Float]) -> Tensor {
        sinusoids(noiseLabels, freqs, channels: numChannels)
    }
}

/// EDM's `FourierEmbedding` (NCSN++): a buffer `freqs` [C/2] (N(0, 1) * scale at initialisation;
/// loaded from the checkpoint), giving [cos(2 pi f x), sin(2 pi f x)] in float32 as EDM.
public final class EDMFourierEmbedding: Module, EDMBufferOwner {
    public let numChannels: Int
    public let freqs: Tensor

    public init(numChannels: Int, scale: Float = 16, generator g: inout RandomGenerator) {
        self.numChannels = numChannels
        freqs = Tensor.randn([numChannels / 2], std: scale, generator: &g)
        super.init()
    }

    public var ownBuffers: [(name: String, tensor: Tensor)] { [("freqs", freqs)] }

    /// [N, C]: cos then sin.
    public func callAsFunction(_ noiseLabels: [Float]) -> Tensor {
        let twoPi = Float(2 * Double.pi)
        return sinusoids(noiseLabels, freqs.scalars.map { twoPi * $0 }, channels: numChannels)
    }
}

/// [N, channels] with row n = [cos(x_n f_0), ..., cos(x_n f_{h-1}), sin(x_n f_0), ...], float32.
func sinusoids(_ x: [Float], _ freqs: [Float], channels: Int) -> Tensor {
    let half = freqs.count
    return Autograd.noGrad {
        // Each argument x_n * f_i rounds once in Float, as before; cos and sin of it on the backend.
        let arguments = Tensor(shape: [x.count, 1], x) * Tensor(shape: [1, half], freqs)
        return Tensor.concat([arguments.cos(), arguments.sin()], axis: 1).padded(axis: 1, before: 0, after: channels - 2 * half)
    }
}
