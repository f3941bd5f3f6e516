/// An N-dimensional Float32 array, row-major and contiguous, with NCHW as the image layout (as in
/// PyTorch), that can take part in reverse-mode automatic differentiation.
///
/// Tensors are reference types and are treated as immutable: every op returns a new tensor. A
/// tensor made by an op while gradients are enabled (see `Autograd`) remembers how it was made,
/// and `backward()` on a scalar result fills `grad` on every leaf with `requiresGrad`.
///
/// ```swift
/// let w = Tensor(shape: [3], [1, 2, 3], requiresGrad: true)
/// let loss = (w * w).sum()      // 14
/// loss.backward()
/// print(w.grad!.scalars)        // [2, 4, 6]
/// ```
public final class Tensor {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Whether gradients flow to this tensor. Leaves set it; op results inherit it from inputs.
    public var requiresGrad: Bool
    /// The accumulated gradient of the last `backward()` calls (leaves only).
    public var grad: Tensor?
    /// How this tensor was made, when it was made under recording; nil for leaves.
    internal(set) public var gradFunction: GradFunction?

    /// Wraps existing storage; `storage.count` must equal the product of `shape`.
    public init(shape: [Int], storage: TensorStorage, requiresGrad: Bool = false) {
        let n = Tensor.elementCount(shape)
        precondition(n == storage.count,
                     "Tensor: shape \(shape) holds \(n) elements but storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    public convenience init(shape: [Int], _ scalars: [Float], requiresGrad: Bool = false) {
        let n = Tensor.elementCount(shape)
        precondition(n == scalars.count,
                     "Tensor: shape \(shape) needs \(n) values, got \(scalars.count)")
        let storage = TensorStorage(uninitializedCount: n)
        scalars.withUnsafeBufferPointer { src in
            if n > 0 { storage.pointer.initialize(from: src.baseAddress!, count: n) }
        }
        self.init(shape: shape, storage: storage, requiresGrad: requiresGrad)
    }

    /// A tensor of the given shape from external data: `bytes` holds product(shape) little-endian
    /// values of `format`, converted to Float32 as `ScalarFormat` says (by the current backend).
    /// The bytes need no alignment.
    public convenience init(shape: [Int], bytes: UnsafeRawBufferPointer, format: ScalarFormat, requiresGrad: Bool = false) {
        let n = Tensor.elementCount(shape)
        precondition(bytes.count == n * format.byteSize,
                     "Tensor: shape \(shape) of \(format) needs \(n * format.byteSize) bytes, got \(bytes.count)")
        let t = Engine.backend.decode(bytes, format: format, shape: shape)
        self.init(shape: shape, storage: t.storage, requiresGrad: requiresGrad)
    }

    /// A 0-dimensional tensor holding one value.
    public convenience init(_ scalar: Float, requiresGrad: Bool = false) {
        self.init(shape: [], [scalar], requiresGrad: requiresGrad)
    }

    /// A tensor of the given shape filled with `value`.
    public convenience init(shape: [Int], repeating value: Float, requiresGrad: Bool = false) {
        self.init(shape: shape, storage: TensorStorage(count: Tensor.elementCount(shape), repeating: value),
                  requiresGrad: requiresGrad)
    }

    /// A tensor of the given shape with uninitialised contents, for kernels to fill.
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(uninitializedCount: elementCount(shape)))
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, repeating: 0, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, repeating: 1, requiresGrad: requiresGrad)
    }

    /// 0, 1, ..., n-1 as a 1-D tensor.
    public static func arange(_ n: Int) -> Tensor {
        Tensor(shape: [n], (0..<n).map { Float($0) })
    }

    @inlinable public static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor: negative dimension in shape \(shape)")
            n *= d
        }
        return n
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }
    /// Pointer to the first element (contiguous, row-major, host memory). Engine-internal: code
    /// above the engine reads values through `scalars`, `item` or `withHostBuffer`.
    var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// The values in row-major order, copied to host memory.
    public var scalars: [Float] { Array(storage.buffer) }

    /// Calls `body` with the values in row-major order in host memory, read-only and valid only
    /// during the call (for writing them out: files, images). The host backends hand over the
    /// tensor's own memory; a device backend would copy to host first.
    public func withHostBuffer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeBufferPointer(storage.buffer)) }
    }

    /// Calls `body` with the values in host memory for writing, in place (the tensor is changed;
    /// every tensor sharing its storage sees the change). For tests and finite differences; ops
    /// above the engine use `assign` or make new tensors. A device backend would copy back after.
    public func withMutableHostBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(storage.buffer) }
    }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, not 1")
        return storage.pointer[0]
    }

    /// Value at a multi-dimensional index (slow; for tests and small reads).
    public subscript(_ index: Int...) -> Float {
        precondition(index.count == rank, "subscript: index \(index) for shape \(shape)")
        var offset = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "subscript: index \(index) out of range for shape \(shape)")
            offset = offset * d + i
        }
        return storage.pointer[offset]
    }

    /// Resolves a possibly negative axis against this tensor's rank.
    public func axis(_ a: Int, op: String) -> Int {
        let r = a < 0 ? a + rank : a
        precondition(r >= 0 && r < Swift.max(rank, 1), "\(op): axis \(a) out of range for shape \(shape)")
        return r
    }

    /// A leaf copy of this tensor's values that records no history.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage)
    }

    /// The same storage seen with another shape of equal size, without history (for handing
    /// operands to kernels; `reshaped` is the recorded form).
    func viewed(_ newShape: [Int]) -> Tensor {
        newShape == shape ? self : Tensor(shape: newShape, storage: storage)
    }

    /// A fresh copy of the values (no history).
    public func copy() -> Tensor {
        Engine.backend.copy(self)
    }

    /// Overwrites this tensor's values with `other`'s (same element count); used by optimizers and
    /// loaders on leaves. Records no history.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: shapes \(other.shape) and \(shape) differ in size")
        Engine.backend.assign(other, to: self)
    }

    /// In place, self = a * self + b * other (same element count; each product rounded to Float
    /// before the sum, like BLAS `saxpby`). Records no history: for optimizer and average updates.
    public func scaleAndAdd(_ a: Float, _ other: Tensor, _ b: Float) {
        precondition(other.count == count, "scaleAndAdd: shapes \(other.shape) and \(shape) differ in size")
        Engine.backend.scaleAndAdd(self, a, other, b)
    }

    /// In place: one AdamW step of this parameter with `gradient`, updating the moment tensors
    /// `firstMoment` and `secondMoment` too (all of one element count; see `AdamWStep` for the
    /// arithmetic, which matches `torch.optim.AdamW`). Records no history.
    public func applyAdamW(gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, _ step: AdamWStep) {
        precondition(gradient.count == count && firstMoment.count == count && secondMoment.count == count,
                     "applyAdamW: gradient \(gradient.shape) and moments \(firstMoment.shape), \(secondMoment.shape) for \(shape)")
        Engine.backend.adamW(parameter: self, gradient: gradient, firstMoment: firstMoment, secondMoment: secondMoment, step)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = count <= 16 ? "\(scalars)" : "\(Array(scalars.prefix(8))) ... (\(count) values)"
        return "Tensor(shape: \(shape), \(values))"
    }
}
