import TensorEngine

/// y = x W^T + b. Keys `weight` [out, in], `bias` [out] (torch.nn.Linear). Initialised as
/// PyTorch does: U(-1/sqrt(in), 1/sqrt(in)) for both. The weight is stored as
/// `WeightStorage.current` at construction (see `WeightStorage`).
public final class Linear: Module {
    public let weightParameter: Parameter
    /// Float32 weight: the trainable leaf, or a transient expansion of the 16-bit copy.
    public var weight: Tensor { weightParameter.value }
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: inout RandomGenerator) {
        let bound = 1 / Float(inFeatures).squareRoot()
        let w = Tensor.uniform([outFeatures, inFeatures], low: -bound, high: bound, generator: &generator)
        self.bias = bias ? Tensor.uniform([outFeatures], low: -bound, high: bound, generator: &generator) : nil
        weightParameter = Parameter(w, storable: true)
        super.init()
        register("weight", weightParameter)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// 2-D convolution over NCHW. Keys `weight` [out, in, k, k], `bias` [out] (torch.nn.Conv2d,
/// dilation 1, groups 1). Initialised as PyTorch does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
/// The weight is stored as `WeightStorage.current` at construction.
public final class Conv2d: Module {
    public let weightParameter: Parameter
    /// Float32 weight: the trainable leaf, or a transient expansion of the 16-bit copy.
    public var weight: Tensor { weightParameter.value }
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, generator: inout RandomGenerator) {
        let bound = 1 / Float(inChannels * kernelSize * kernelSize).squareRoot()
        let w = Tensor.uniform([outChannels, inChannels, kernelSize, kernelSize], low: -bound, high: bound, generator: &generator)
        self.bias = bias ? Tensor.uniform([outChannels], low: -bound, high: bound, generator: &generator) : nil
        self.stride = stride
        self.padding = padding
        weightParameter = Parameter(w, storable: true)
        super.init()
        register("weight", weightParameter)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group normalisation over [N, C, ...] with per-channel affine `weight` (1) and `bias` (0)
/// (torch.nn.GroupNorm).
public final class GroupNorm: Module {
    public let groups: Int
    public let eps: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels do not split into \(groups) groups")
        self.groups = groups
        self.eps = eps
        weight = Tensor.ones([channels])
        bias = Tensor.zeros([channels])
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps)
    }

    /// GroupNorm followed by SiLU in one pass (the ResNet block's pattern).
    public func withSiLU(_ x: Tensor) -> Tensor {
        x.groupNormSiLU(groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalisation over the last dimension (torch.nn.LayerNorm(dim)).
public final class LayerNorm: Module {
    public let eps: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(_ dim: Int, eps: Float = 1e-5) {
        self.eps = eps
        weight = Tensor.ones([dim])
        bias = Tensor.zeros([dim])
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(normalizedShape: [weight.count], weight: weight, bias: bias, eps: eps)
    }
}

/// A lookup table `weight` [count, dim] (torch.nn.Embedding), initialised N(0, 1). The table is
/// stored as `WeightStorage.current` at construction.
public final class Embedding: Module {
    public let weightParameter: Parameter
    /// Float32 table: the trainable leaf, or an expansion of the 16-bit copy (the forward pass
    /// expands only the rows it looks up).
    public var weight: Tensor { weightParameter.value }

    public init(_ count: Int, _ dim: Int, generator: inout RandomGenerator) {
        weightParameter = Parameter(Tensor.randn([count, dim], generator: &generator), storable: true)
        super.init()
        register("weight", weightParameter)
    }

    /// Number of rows.
    public var count: Int { weightParameter.shape[0] }

    /// `ids` holds integer ids as Float values.
    public func callAsFunction(_ ids: Tensor) -> Tensor {
        if let half = weightParameter.half { return half.embedding(indices: ids) }
        return Tensor.embedding(indices: ids, weight: weight)
    }
}
