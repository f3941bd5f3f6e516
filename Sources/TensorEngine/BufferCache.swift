import Foundation

/// A caching allocator for tensor storage, like PyTorch's CPU caching allocator: freed buffers
/// of 64 KB and more go to free lists by size class and are handed out again, so a training step
/// reuses the previous step's memory instead of page-faulting fresh memory from the OS (measured:
/// a fifth of training time went to the kernel clearing new pages). Size classes are powers of two
/// split in 8 steps, so at most 12.5% is wasted. At most `retainedLimit` bytes are kept idle.
enum BufferCache {
    static let minimumCachedBytes = 64 << 10
    static let retainedLimit = 4 << 30
    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var idleBytes = 0

    /// The byte size actually allocated for a request of `bytes`.
    static func sizeClass(_ bytes: Int) -> Int {
        if bytes < minimumCachedBytes { return Swift.max(bytes, 64) }
        let top = Int.bitWidth - 1 - bytes.leadingZeroBitCount      // 2^top <= bytes
        let step = 1 << (top - 3)
        return (bytes + step - 1) / step * step
    }

    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = sizeClass(bytes)
        if size >= minimumCachedBytes {
            lock.lock()
            if let p = free[size]?.popLast() {
                idleBytes -= size
                lock.unlock()
                return p
            }
            lock.unlock()
        }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    static func release(_ p: UnsafeMutableRawPointer, bytes: Int) {
        let size = sizeClass(bytes)
        if size >= minimumCachedBytes {
            lock.lock()
            if idleBytes + size <= retainedLimit {
                free[size, default: []].append(p)
                idleBytes += size
                lock.unlock()
                return
            }
            lock.unlock()
        }
        p.deallocate()
    }

    /// Frees every idle buffer (e.g. between jobs of very different shapes).
    static func trim() {
        lock.lock()
        let all = free.values.flatMap { $0 }
        free.removeAll()
        idleBytes = 0
        lock.unlock()
        for p in all { p.deallocate() }
    }
}
