/// The memory behind a tensor: a fixed-size, 64-byte-aligned buffer of Float32 owned by this
/// object. Tensors share storage only where that is safe (a reshape shares; every other op copies),
/// so kernels may read it freely; only optimizers and explicit in-place helpers write into a
/// tensor after it is made. All backends reach memory through this type, which keeps the rest of
/// the engine free of allocation details (a GPU backend would give it a device buffer).
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, uninitialised.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let raw = BufferCache.allocate(Swift.max(count, 1) * MemoryLayout<Float>.stride)
        pointer = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        MemoryStatistics.allocated(bytes: count * MemoryLayout<Float>.stride)
    }

    /// Allocates `count` floats set to `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        MemoryStatistics.freed(bytes: count * MemoryLayout<Float>.stride)
        BufferCache.release(UnsafeMutableRawPointer(pointer), bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride)
    }

    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}
