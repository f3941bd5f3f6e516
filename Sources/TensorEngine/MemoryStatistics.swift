import Foundation

/// Live and peak bytes held by tensor storage, for benchmarks and memory reports.
public enum MemoryStatistics {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(bytes: Int) {
        lock.lock(); live += bytes; if live > peak { peak = live }; lock.unlock()
    }

    static func freed(bytes: Int) {
        lock.lock(); live -= bytes; lock.unlock()
    }

    /// Bytes held by tensors now.
    public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
    /// The most bytes tensors have held at once since the last `resetPeak()`.
    public static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    public static func resetPeak() { lock.lock(); peak = live; lock.unlock() }

    /// Frees the idle buffers the tensor allocator keeps for reuse. Worth calling after building a
    /// model with 16-bit weights: every layer's Float32 initial weight went idle into a size class
    /// that inference may never ask for again (about 0.8 GB for an SD 2 pipeline); freed, the memory
    /// returns to the C allocator, which reuses it for any size.
    public static func releaseIdleBuffers() { BufferCache.trim() }

    /// The process's peak resident set size in bytes (VmHWM on Linux, ru_maxrss elsewhere).
    public static var peakResidentBytes: Int {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
                let digits = line.split(separator: " ").compactMap { Int($0) }
                if let kb = digits.first { return kb * 1024 }
            }
        }
        #endif
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(0), &usage) // RUSAGE_SELF
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        #if os(Linux)
        return Int(usage.ru_maxrss) * 1024
        #else
        return Int(usage.ru_maxrss)
        #endif
    }
}
