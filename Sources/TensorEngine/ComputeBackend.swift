// The backend seam: every value the engine computes comes from a `ComputeBackend`. The `Tensor`
// API (shape checks, broadcasting rules, autodiff recording) is written once, above the seam;
// a backend implements the kernels below it. Two backends exist: `CPUBackend` (BLAS, Winograd,
// fused kernels; the default and the only one meant for production) and `ReferenceBackend` (plain
// loops and compositions of primitives, for checking the first). docs/engine.md says how a new
// backend plugs in.

/// The kernels behind the `Tensor` API. Every method returns fresh tensors that record no history
/// (the caller records); in-place methods say so. Inputs are contiguous and row-major, already
/// checked by the caller (shapes agree, indices in range), and are never modified unless the
/// method says so. A backend is stateless and may be used from any thread.
///
/// Tensors of one backend's making may meet another's only where both keep values in the same
/// memory; both backends here use host memory (`TensorStorage`), so mixing them is safe.
public protocol ComputeBackend: AnyObject, Sendable {
    /// A short name ("cpu", "reference").
    var name: String { get }

    // MARK: Elementwise

    /// op(x) for every element.
    func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor
    /// The gradient of `unary(op, x)` given the output gradient: `operand` is the op's input, or
    /// its output where `op.gradientUsesOutput`. Only ops with `op.hasGradientKernel`.
    func unaryGradient(_ op: UnaryOp, gradient: Tensor, operand: Tensor) -> Tensor
    /// op(a, b) with NumPy broadcasting (the shapes are known to broadcast).
    func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor
    /// condition != 0 ? a : b, the three broadcast together; values are copied exactly.
    func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor

    // MARK: Reductions

    /// Sums over the middle axis of x seen as [outer, reduced, inner]; the result is [outer * inner].
    func sum(_ x: Tensor, _ layout: ReductionLayout) -> Tensor
    /// Largest (or smallest) value over the middle axis; [outer * inner]. layout.reduced > 0.
    func extremum(_ x: Tensor, _ layout: ReductionLayout, largest: Bool) -> Tensor
    /// Index (as Float) of the first largest (or smallest) value over the middle axis; [outer * inner].
    func argExtremum(_ x: Tensor, _ layout: ReductionLayout, largest: Bool) -> Tensor
    /// The sum of squares of every element of `tensors`, in order, accumulated in Float64.
    func sumOfSquares(_ tensors: [Tensor]) -> Double
    /// For x and target [N, ...]: the mean over each row of loss(x - target), the difference taken
    /// in Float and the loss and the sum in Float64 in element order.
    func rowMeanLoss(_ x: Tensor, target: Tensor, _ loss: PointwiseLoss) -> [Double]

    // MARK: Layout

    /// Dimensions reordered: result dimension i is input dimension order[i].
    func permute(_ x: Tensor, _ order: [Int]) -> Tensor
    /// Elements `range` along `axis`.
    func slice(_ x: Tensor, axis: Int, _ range: Range<Int>) -> Tensor
    /// `before` and `after` copies of `value` around `axis`.
    func pad(_ x: Tensor, axis: Int, before: Int, after: Int, value: Float) -> Tensor
    /// The tensors joined along `axis` (they agree elsewhere).
    func concat(_ tensors: [Tensor], axis: Int) -> Tensor
    /// x broadcast to `shape` (a copy).
    func broadcast(_ x: Tensor, to shape: [Int]) -> Tensor
    /// Rows `rows` of x along its first dimension, stacked (rows in range, repeats allowed).
    func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor
    /// The adjoint of `gatherRows`: a [count, ...] tensor of zeros with gradient row i added into
    /// row rows[i], rows taken in order (fixed for every thread count).
    func scatterAddRows(_ gradient: Tensor, _ rows: [Int], count: Int) -> Tensor
    /// A copy of x with row rows[i] replaced by row i of `values` (rows distinct).
    func replaceRows(_ x: Tensor, _ rows: [Int], with values: Tensor) -> Tensor

    // MARK: Products

    /// op(a) op(b) over the last two dimensions, batch dimensions broadcast (ranks >= 2).
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor
    /// x W^T + b for x [rows, in], W [out, in], b [out].
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor

    // MARK: Images

    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: Conv2dGeometry,
                algorithm: Conv2dAlgorithm) -> Tensor
    /// Gradients of `conv2d` with respect to input and weight, each only when asked for.
    func conv2dBackward(gradient: Tensor, input: Tensor, weight: Tensor, geometry: Conv2dGeometry,
                        algorithm: Conv2dAlgorithm, needInput: Bool, needWeight: Bool) -> (input: Tensor?, weight: Tensor?)
    /// The bias gradient: gradient [N, O, H, W] summed over N, H and W.
    func conv2dBiasGradient(_ gradient: Tensor) -> Tensor
    func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)) -> Tensor
    func avgPool2dBackward(gradient: Tensor, inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)) -> Tensor
    func upsampleNearest(_ x: Tensor, scale: (Int, Int)) -> Tensor
    func upsampleNearestBackward(gradient: Tensor, scale: (Int, Int)) -> Tensor
    /// Each [H, W] plane of x [N, C, H, W] cross-correlated with the [kH, kW] filter at `stride`,
    /// zero `padding`, into [N, C, outputSize]: out[oy, ox] = sum filter[ky, kx] x[oy s - p + ky, ox s - p + kx].
    func depthwiseCorrelate(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor
    /// The transpose of `depthwiseCorrelate`: out[iy s - p + ky, ix s - p + kx] += filter[ky, kx] x[iy, ix]
    /// for the positions inside [N, C, outputSize].
    func depthwiseScatter(_ x: Tensor, filter: Tensor, stride: Int, padding: Int, outputSize: (Int, Int)) -> Tensor

    // MARK: Fused layers

    /// Group norm (optionally followed by SiLU) of x [N, C, ...]. `saved` (here and in the other
    /// fused ops) is whatever this backend's backward needs besides the inputs and output: it is
    /// handed back unchanged, so each backend keeps its own kind of statistics.
    func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool)
        -> (output: Tensor, saved: AnyObject?)
    func groupNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, groups: Int, weight: Tensor?, bias: Tensor?,
                           eps: Float, silu: Bool, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?)
    /// Layer norm over the trailing `normalizedCount` elements of each row; weight and bias hold
    /// that many values.
    func layerNorm(_ x: Tensor, normalizedCount: Int, weight: Tensor?, bias: Tensor?, eps: Float)
        -> (output: Tensor, saved: AnyObject?)
    func layerNormBackward(gradient: Tensor, input: Tensor, saved: AnyObject?, normalizedCount: Int, weight: Tensor?,
                           bias: Tensor?, eps: Float, needs: GradientNeeds) -> (input: Tensor?, weight: Tensor?, bias: Tensor?)
    /// Softmax (or log-softmax) over the middle axis of x seen as [outer, n, inner].
    func softmax(_ x: Tensor, _ layout: ReductionLayout, log: Bool) -> Tensor
    func softmaxBackward(gradient: Tensor, output: Tensor, _ layout: ReductionLayout, log: Bool) -> Tensor
    /// softmax(Q K^T scale + mask [+ causal mask]) V; `mask` broadcasts to the scores. `saved`
    /// (when `keepForBackward`) is handed to `attentionBackward`.
    func attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor?, shape: AttentionShape,
                   scale: Float, causal: Bool, keepForBackward: Bool) -> (output: Tensor, saved: AnyObject?)
    /// Gradients with respect to query, key, value and the mask (in the mask's own shape), each
    /// only when `needs` asks for it.
    func attentionBackward(gradient: Tensor, query: Tensor, key: Tensor, value: Tensor, mask: Tensor?,
                           output: Tensor, saved: AnyObject?, shape: AttentionShape, scale: Float, causal: Bool,
                           needs: AttentionGradientNeeds) -> (query: Tensor?, key: Tensor?, value: Tensor?, mask: Tensor?)

    // MARK: Random numbers

    /// Inverted dropout with the mask of a uniform draw from `generator` (see `Tensor.dropout`).
    func dropout(_ x: Tensor, generator: RandomGenerator, keep: Float, scale: Float) -> Tensor
    /// Uniform values in [low, high) from `generator` (not advanced), `layout` saying which words.
    func randomUniform(_ shape: [Int], low: Float, high: Float, generator: RandomGenerator, layout: RandomLayout) -> Tensor
    /// Normal values mean + std z from `generator` (not advanced), as `RandomGenerator.fillNormal`.
    func randomNormal(_ shape: [Int], mean: Float, std: Float, generator: RandomGenerator) -> Tensor
    /// Integers in 0 ..< upperBound (<= 2^24) as Float, as `RandomGenerator.fillIntegers`.
    func randomIntegers(_ shape: [Int], upperBound: Int, generator: RandomGenerator) -> Tensor

    // MARK: Conversions and in-place updates

    /// Little-endian values of `format` (count = product of shape) as Float32, converted as
    /// `ScalarFormat` documents.
    func decode(_ bytes: UnsafeRawBufferPointer, format: ScalarFormat, shape: [Int]) -> Tensor
    /// A 16-bit tensor's values as Float32 (exact).
    func expandHalf(_ half: HalfTensor) -> Tensor
    /// Rows `rows` of a 16-bit [V, D] table as a Float32 [rows.count, D] tensor.
    func expandHalfRows(_ half: HalfTensor, _ rows: [Int]) -> Tensor
    /// Overwrites `half` with x's values rounded to nearest even (same count).
    func roundHalf(_ x: Tensor, into half: HalfTensor)
    /// A copy of x.
    func copy(_ x: Tensor) -> Tensor
    /// In place: destination's values become source's (same count).
    func assign(_ source: Tensor, to destination: Tensor)
    /// In place: x = a x + b y (same count), each product rounded to Float before the sum.
    func scaleAndAdd(_ x: Tensor, _ a: Float, _ y: Tensor, _ b: Float)
    /// In place: one AdamW step of parameter p with gradient g and moments m, v (see `AdamWStep`).
    func adamW(parameter p: Tensor, gradient g: Tensor, firstMoment m: Tensor, secondMoment v: Tensor, _ step: AdamWStep)
}

// MARK: - Choosing the backend

extension Engine {
    /// The backend that computes every op. Task-local (and thread-local outside tasks), like
    /// `Autograd.isEnabled`: set it with `withBackend`. The default is `CPUBackend`.
    @TaskLocal public static var backend: any ComputeBackend = CPUBackend.shared

    /// Runs `body` with `backend` computing every op in it (on this task or thread; the setting
    /// does not leak out of `body`, and child tasks inherit it). A gradient is computed by the
    /// backend that computed the op's forward, wherever `backward()` is called.
    ///
    /// ```swift
    /// let y = Engine.withBackend(.reference) { model(x) }   // plain loops, for checking
    /// ```
    public static func withBackend<B: ComputeBackend, R>(_ backend: B, _ body: () throws -> R) rethrows -> R {
        try $backend.withValue(backend) { try body() }
    }

    /// `withBackend` for a backend of unknown type.
    public static func withBackend<R>(any backend: any ComputeBackend, _ body: () throws -> R) rethrows -> R {
        try $backend.withValue(backend) { try body() }
    }
}

extension ComputeBackend where Self == CPUBackend {
    /// The production backend: BLAS products, Winograd and im2col convolutions, fused kernels.
    public static var cpu: CPUBackend { CPUBackend.shared }
}

extension ComputeBackend where Self == ReferenceBackend {
    /// Plain loops and compositions of primitives (slow; for checking the CPU backend).
    public static var reference: ReferenceBackend { ReferenceBackend.shared }
}

// MARK: - Op descriptions

/// A one-input elementwise op.
public enum UnaryOp: Sendable, Equatable {
    case negate
    case addScalar(Float)            // x + s
    case multiplyScalar(Float)       // x * s
    case subtractFromScalar(Float)   // s - x
    case divideScalar(Float)         // s / x
    case powScalar(Float)            // x^p
    case square, exp, log, sqrt, rsqrt, abs, sign, sin, cos
    case clamp(lower: Float, upper: Float)
    case sigmoid, tanh, silu, relu, softplus
    case gelu                        // x Phi(x)
    case geluTanh                    // tanh approximation
    case quickGelu                   // x sigmoid(1.702 x)
    case greaterThan(Float), lessThan(Float), nonzero   // 0/1 results

    /// Whether `unaryGradient` takes the op's output (else its input).
    public var gradientUsesOutput: Bool {
        switch self {
        case .exp, .sqrt, .rsqrt, .sigmoid, .tanh: return true
        default: return false
        }
    }

    /// Whether the gradient is a kernel of its own (`unaryGradient`); the others are compositions
    /// (negate, the scalar additions and multiplication) or zero (comparisons, sign).
    public var hasGradientKernel: Bool {
        switch self {
        case .negate, .addScalar, .multiplyScalar, .subtractFromScalar, .sign, .greaterThan, .lessThan, .nonzero:
            return false
        default: return true
        }
    }
}

/// A two-input elementwise op (broadcast).
public enum BinaryOp: Sendable, Equatable {
    case add, subtract, multiply, divide, pow, minimum, maximum
    case greater, less, equal                      // 0/1 results
    /// The gradient weights of `minimum` / `maximum` for the first operand: 1 where it wins,
    /// 0.5 on ties, 0 where it loses (as PyTorch shares ties).
    case minimumWeight, maximumWeight
}

/// A reduction or softmax axis: a contiguous tensor seen as [outer, reduced, inner].
public struct ReductionLayout: Sendable, Equatable {
    public let outer: Int, reduced: Int, inner: Int
    public init(outer: Int, reduced: Int, inner: Int) { self.outer = outer; self.reduced = reduced; self.inner = inner }
}

/// Which gradients a normalisation backward must compute.
public struct GradientNeeds: Sendable, Equatable {
    public var input: Bool, weight: Bool, bias: Bool
    public init(input: Bool, weight: Bool, bias: Bool) { self.input = input; self.weight = weight; self.bias = bias }
    public var any: Bool { input || weight || bias }
}

/// Which gradients an attention backward must compute.
public struct AttentionGradientNeeds: Sendable, Equatable {
    public var query: Bool, key: Bool, value: Bool, mask: Bool
    public init(query: Bool, key: Bool, value: Bool, mask: Bool) {
        self.query = query; self.key = key; self.value = value; self.mask = mask
    }
}

/// An elementwise regression loss of a difference d (in Float64): squared d^2, absolute |d|, or
/// PyTorch's Huber with delta 1 (0.5 d^2 where |d| < 1, else |d| - 0.5).
public enum PointwiseLoss: Sendable, Equatable {
    case squared, absolute, huber

    @inlinable public func value(_ d: Double) -> Double {
        switch self {
        case .squared: return d * d
        case .absolute: return Swift.abs(d)
        case .huber: return Swift.abs(d) < 1 ? 0.5 * d * d : Swift.abs(d) - 0.5
        }
    }
}

/// Which random words a uniform draw uses (see `RandomGenerator`).
public enum RandomLayout: Sendable, Equatable {
    /// Element i is word i % 4 of block offset + i / 4 (`rand`, `fillUniform`): ceil(n / 4) blocks.
    case packed
    /// Element i is word 0 of block offset + i: the values of n successive scalar draws
    /// (`nextFloat(low:high:)`), n blocks.
    case onePerBlock

    /// Blocks a draw of `count` elements uses.
    public func blocks(_ count: Int) -> Int { self == .packed ? (count + 3) / 4 : count }
}

/// Element types of external data (files, images) that `Tensor(shape:bytes:format:)` converts to
/// Float32. Multi-byte types are little-endian. Floats convert exactly (F64 rounds to nearest);
/// integers convert to the nearest Float (exact up to 2^24); `bool` is 0 or 1 (any nonzero byte).
public enum ScalarFormat: String, Sendable, CaseIterable {
    case float32, float16, bfloat16, float64, bool, uint8, int8, int16, uint16, int32, uint32, int64, uint64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }
}

/// The constants of one AdamW step (`torch.optim.AdamW`, amsgrad off), per element:
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g;
///   p = p decay - stepSize m / (sqrt(v) / secondMomentCorrectionRoot + eps),
/// with decay = 1 - lr wd, stepSize = lr / (1 - beta1^t), secondMomentCorrectionRoot = sqrt(1 - beta2^t).
public struct AdamWStep: Sendable, Equatable {
    public var beta1: Float, beta2: Float, eps: Float
    public var decay: Float, stepSize: Float, secondMomentCorrectionRoot: Float
    public init(beta1: Float, beta2: Float, eps: Float, decay: Float, stepSize: Float, secondMomentCorrectionRoot: Float) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.decay = decay; self.stepSize = stepSize; self.secondMomentCorrectionRoot = secondMomentCorrectionRoot
    }
}
