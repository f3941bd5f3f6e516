import CEngineSupport
import Dispatch
import Foundation

/// Engine-wide settings: how many threads kernels use, and how BLAS threads are set.
///
/// Threading policy: the engine's own kernels split work into fixed chunks with
/// `DispatchQueue.concurrentPerform`, and every chunk computes the same values whatever the thread
/// count (reductions run in a fixed order), so results are identical for 1 or N threads. The CPU
/// backend calls BLAS single-threaded, from inside those chunks (`blasMatmul` splits a large
/// product into a partition fixed by its shape), so the cores are not oversubscribed and the bits
/// do not depend on BLAS's own threading; only `rawBLASMatmul`, a benchmark, uses BLAS threads.
public enum Engine {
    nonisolated(unsafe) private static var _threads: Int = defaultThreadCount()
    nonisolated(unsafe) private static var blasThreads: Int = -1

    /// `DIFFCLASS_THREADS` when set to a positive integer, else the number of active cores.
    public static func defaultThreadCount() -> Int {
        if let s = ProcessInfo.processInfo.environment["DIFFCLASS_THREADS"], let n = Int(s), n > 0 { return n }
        return Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Threads used by kernels and BLAS (at least 1).
    public static var threads: Int {
        get { _threads }
        set {
            precondition(newValue >= 1, "Engine.threads must be at least 1, got \(newValue)")
            _threads = newValue
        }
    }

    /// Sets the BLAS thread count if it differs from the last one set (the call is not free).
    @usableFromInline static func setBLASThreads(_ n: Int) {
        if blasThreads != n {
            ces_blas_set_threads(Int32(n))
            blasThreads = n
        }
    }

    /// Call once at start-up: flushes denormals on this thread and fixes BLAS threads.
    public static func initialize() {
        ces_flush_denormals()
        setBLASThreads(threads)
    }

    /// The BLAS library and build it reports.
    public static var blasDescription: String { String(cString: ces_blas_config()) }
}

/// Runs `body(chunk)` for chunk = 0..<chunks, in parallel when `Engine.threads > 1`. Each worker
/// flushes denormals first. Chunks must write disjoint memory.
@inlinable
public func parallelChunks(_ chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 0 { return }
    let threads = Engine.threads
    if chunks == 1 || threads == 1 {
        ces_flush_denormals()
        for c in 0..<chunks { body(c) }
        return
    }
    Engine.setBLASThreads(1)
    // Round-robin the chunks over at most `threads` workers so no more run at once.
    let workers = Swift.min(threads, chunks)
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        ces_flush_denormals()
        var c = w
        while c < chunks { body(c); c += workers }
    }
}

/// Splits 0..<count into ranges of at least `grain` items (a fixed split, independent of the
/// thread count) and runs `body` on each, in parallel when worthwhile.
@inlinable
public func parallelFor(_ count: Int, grain: Int = 32768, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let g = Swift.max(1, grain)
    let chunks = (count + g - 1) / g
    if chunks == 1 || Engine.threads == 1 {
        body(0..<count)
        return
    }
    parallelChunks(chunks) { c in
        let start = c * g
        body(start..<Swift.min(count, start + g))
    }
}
