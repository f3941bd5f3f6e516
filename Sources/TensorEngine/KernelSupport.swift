import CEngineSupport
import Foundation

// Helpers shared by the image kernels (Convolution.swift, ConvolutionWinograd.swift): reusable
// scratch memory, fixed work partitions over workers, and a fixed-order sum.

/// Runs `body` with `count` uninitialised floats, 64-byte aligned, from `ScratchPool`.
@inline(__always)
func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
    let buffer = ScratchPool.take(count)
    defer { ScratchPool.give(buffer) }
    return body(buffer.pointer)
}

/// Scratch buffers kept between kernel calls. Fresh memory from the OS costs a page fault per
/// 4 KB on first touch (measured: 3-6 ms for a 12 MB buffer, more than the convolution using it),
/// and glibc returns large blocks to the OS on free, so buffers are reused instead. At most
/// `retainedLimit` bytes are kept; a buffer larger than that is freed after use.
enum ScratchPool {
    struct Buffer { let pointer: UnsafeMutablePointer<Float>; let capacity: Int }

    static let retainedLimit = 64 << 20
    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [Buffer] = []  // oldest first
    nonisolated(unsafe) private static var retained = 0

    /// A buffer of at least `count` floats: the smallest kept one that fits, else a new one.
    static func take(_ count: Int) -> Buffer {
        let need = Swift.max(count, 16)
        lock.lock()
        var best = -1
        for (i, b) in free.enumerated() where b.capacity >= need && (best < 0 || b.capacity < free[best].capacity) {
            best = i
        }
        if best >= 0 {
            let b = free.remove(at: best)
            retained -= b.capacity * 4
            lock.unlock()
            return b
        }
        lock.unlock()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: need * MemoryLayout<Float>.stride, alignment: 64)
        return Buffer(pointer: raw.bindMemory(to: Float.self, capacity: need), capacity: need)
    }

    /// Returns a buffer; the oldest kept ones are freed while more than `retainedLimit` is kept.
    static func give(_ b: Buffer) {
        var release: [Buffer] = []
        lock.lock()
        if b.capacity * 4 > retainedLimit {
            release.append(b)
        } else {
            free.append(b)
            retained += b.capacity * 4
            while retained > retainedLimit {
                let old = free.removeFirst()
                retained -= old.capacity * 4
                release.append(old)
            }
        }
        lock.unlock()
        for r in release { UnsafeMutableRawPointer(r.pointer).deallocate() }
    }

    /// Whether a buffer of `count` floats would be kept between calls.
    static func keeps(_ count: Int) -> Bool { count * 4 <= retainedLimit }
}

/// Runs `body(item, worker)` for item in 0..<items, round robin over `workers` workers (worker
/// indexes per-worker scratch). BLAS runs single-threaded inside: multi-threaded OpenBLAS does not
/// always give the same bits as single-threaded (measured on sgemm with a long inner dimension), so
/// these kernels get their parallelism from fixed partitions of their own instead.
@inline(__always)
func runOnWorkers(_ items: Int, workers: Int, _ body: (Int, Int) -> Void) {
    if items <= 0 { return }
    Engine.setBLASThreads(1)
    if workers <= 1 {
        ces_flush_denormals()
        for i in 0..<items { body(i, 0) }
        return
    }
    parallelChunks(workers) { w in
        var i = w
        while i < items { body(i, w); i += workers }
    }
}

/// Sum of `count` floats in a fixed order (four SIMD4 partial sums), as Double.
@inline(__always)
func fixedOrderSum(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
    var a0 = SIMD4<Float>(), a1 = SIMD4<Float>(), a2 = SIMD4<Float>(), a3 = SIMD4<Float>()
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 16 <= count {
        a0 += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
        a1 += raw.loadUnaligned(fromByteOffset: 4 * (i + 4), as: SIMD4<Float>.self)
        a2 += raw.loadUnaligned(fromByteOffset: 4 * (i + 8), as: SIMD4<Float>.self)
        a3 += raw.loadUnaligned(fromByteOffset: 4 * (i + 12), as: SIMD4<Float>.self)
        i += 16
    }
    var s = Double(((a0 + a1) + (a2 + a3)).sum())
    while i < count { s += Double(p[i]); i += 1 }
    return s
}
