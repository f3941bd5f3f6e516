/// The memory behind a tensor: a fixed-size, 64-byte-aligned buffer of Float32 in host memory,
/// owned by this object. Tensors share storage only where that is safe (a reshape shares; every
/// other op copies), so kernels may read it freely; only the in-place APIs (`assign`,
/// `scaleAndAdd`, optimizer steps, `withMutableHostBuffer`) write into a tensor after it is made.
///
/// Outside the engine a storage is an opaque handle (its element count and identity): the host
/// pointer is internal, so code above the engine never assumes where values live. A device
/// backend would give this class a device buffer (docs/engine.md, "Adding a backend").
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, uninitialised.
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        let raw = BufferCache.allocate(Swift.max(count, 1) * MemoryLayout<Float>.stride)
        pointer = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        MemoryStatistics.allocated(bytes: count * MemoryLayout<Float>.stride)
    }

    /// Allocates `count` floats set to `value`.
    convenience init(count: Int, repeating value: Float) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        MemoryStatistics.freed(bytes: count * MemoryLayout<Float>.stride)
        BufferCache.release(UnsafeMutableRawPointer(pointer), bytes: Swift.max(count, 1) * MemoryLayout<Float>.stride)
    }

    var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}
