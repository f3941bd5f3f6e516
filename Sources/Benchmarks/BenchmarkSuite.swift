import Foundation
import TensorEngine

/// One timed workload. `spec` describes it to the PyTorch side (tools/bench_torch.py), which runs
/// the same op at the same shapes and threads, so each case is defined once, here.
public struct BenchmarkCase {
    public let name: String
    /// Floating-point operations of one run (for GFLOP/s), when meaningful.
    public let flops: Double?
    /// JSON-encodable description: "op" plus its shape parameters.
    public let spec: [String: BenchmarkValue]
    /// Builds inputs (untimed) and returns the body to time.
    public let prepare: () -> () -> Void

    public init(name: String, flops: Double?, spec: [String: BenchmarkValue], prepare: @escaping () -> () -> Void) {
        self.name = name
        self.flops = flops
        self.spec = spec
        self.prepare = prepare
    }
}

public enum BenchmarkValue: Codable, Equatable {
    case int(Int), string(String), bool(Bool)
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        }
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .int(v) } else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else { self = .string(try c.decode(String.self)) }
    }
}

/// One case's timing, ours and (when available) PyTorch's.
public struct BenchmarkResult: Encodable {
    public let name: String
    public let milliseconds: Double
    public let gflops: Double?
    /// The most bytes tensors held at once during this case's runs (inputs and model included).
    public var peakTensorBytes: Int? = nil
    public var torchMilliseconds: Double?
    /// PyTorch time / our time: above 1 means we are faster.
    public var speedupOverTorch: Double? {
        guard let t = torchMilliseconds, milliseconds > 0 else { return nil }
        return t / milliseconds
    }

    enum CodingKeys: String, CodingKey { case name, milliseconds, gflops, peakTensorBytes, torchMilliseconds, speedupOverTorch }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(milliseconds, forKey: .milliseconds)
        try c.encodeIfPresent(gflops, forKey: .gflops)
        try c.encodeIfPresent(peakTensorBytes, forKey: .peakTensorBytes)
        try c.encodeIfPresent(torchMilliseconds, forKey: .torchMilliseconds)
        try c.encodeIfPresent(speedupOverTorch, forKey: .speedupOverTorch)
    }
}

public struct BenchmarkReport: Encodable {
    public var threads: Int
    public var blas: String
    public var torch: String?
    public var results: [BenchmarkResult]
    public var peakTensorBytes: Int
    public var peakResidentBytes: Int
    /// The classifier case against the PyTorch reference (`ClassifierBenchmark`), when run.
    public var classifier: ClassifierBenchmarkResult? = nil
    /// The end-to-end case at equal accuracy (`ClassifierBenchmark.runEndToEnd`), when run.
    public var classifierEndToEnd: ClassifierEndToEndResult? = nil
    /// The cross-image batching case (`ClassifierBenchmark.runCrossImage`), when run.
    public var classifierCrossImage: CrossImageBatchingResult? = nil
}

public enum BenchmarkRunner {
    /// Median wall time in milliseconds of `body`, after one warm-up run, over at least
    /// `minRuns` runs and at least `minSeconds` of timing (the machine is shared: the median
    /// resists other load better than the mean).
    public static func medianMilliseconds(minRuns: Int = 3, minSeconds: Double = 0.5, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < minRuns || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < minSeconds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            if times.count >= 200 { break }
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Runs `cases` with the engine, then the same cases in PyTorch when `torchScript` exists and
    /// a Python with torch is found, in this one invocation and at the same thread count.
    public static func run(_ cases: [BenchmarkCase], torchScript: String?, python: String = "python3",
                           minSeconds: Double = 0.5, log: (String) -> Void) -> BenchmarkReport {
        MemoryStatistics.resetPeak()
        var results: [BenchmarkResult] = []
        var peakTensor = MemoryStatistics.peakBytes
        for c in cases {
            // Each case's own peak (the previous case's tensors are gone by now).
            MemoryStatistics.resetPeak()
            let body = c.prepare()
            let ms = medianMilliseconds(minSeconds: minSeconds, body)
            let gflops = c.flops.map { $0 / (ms * 1e6) }
            let peak = MemoryStatistics.peakBytes
            peakTensor = Swift.max(peakTensor, peak)
            results.append(BenchmarkResult(name: c.name, milliseconds: ms, gflops: gflops, peakTensorBytes: peak, torchMilliseconds: nil))
            log("  " + pad(c.name, 36) + pad(String(format: "%.3f ms", ms), 14, right: true)
                + (gflops.map { pad(String(format: "%.1f GFLOP/s", $0), 16, right: true) } ?? "")
                + pad(String(format: "%.1f MB", Double(peak) / 1e6), 12, right: true))
        }
        var torchVersion: String?
        if let script = torchScript, FileManager.default.fileExists(atPath: script) {
            log("  running the same cases in PyTorch (\(script))...")
            switch TorchComparison.run(script: script, python: python, threads: Engine.threads,
                                       cases: cases, minSeconds: minSeconds) {
            case .success(let (version, times)):
                torchVersion = version
                for i in results.indices { results[i].torchMilliseconds = times[results[i].name] }
            case .failure(let error):
                log("  PyTorch comparison skipped: \(error.message)")
            }
        }
        return BenchmarkReport(threads: Engine.threads, blas: Engine.blasDescription, torch: torchVersion,
                               results: results, peakTensorBytes: peakTensor,
                               peakResidentBytes: MemoryStatistics.peakResidentBytes)
    }

    /// A fixed-width table of a report.
    public static func table(_ report: BenchmarkReport) -> String {
        var lines = ["threads: \(report.threads)   BLAS: \(report.blas)   PyTorch: \(report.torch ?? "not run")",
                     pad("case", 36) + pad("ours ms", 12, right: true) + pad("GFLOP/s", 10, right: true)
                        + pad("torch ms", 12, right: true) + pad("speedup", 10, right: true) + pad("peak MB", 10, right: true)]
        for r in report.results {
            lines.append(pad(r.name, 36) + pad(String(format: "%.3f", r.milliseconds), 12, right: true)
                         + pad(r.gflops.map { String(format: "%.1f", $0) } ?? "-", 10, right: true)
                         + pad(r.torchMilliseconds.map { String(format: "%.3f", $0) } ?? "-", 12, right: true)
                         + pad(r.speedupOverTorch.map { String(format: "%.2fx", $0) } ?? "-", 10, right: true)
                         + pad(r.peakTensorBytes.map { String(format: "%.1f", Double($0) / 1e6) } ?? "-", 10, right: true))
        }
        lines.append(String(format: "peak tensor memory %.1f MB, peak resident %.1f MB",
                            Double(report.peakTensorBytes) / 1e6, Double(report.peakResidentBytes) / 1e6))
        if let c = report.classifier { lines.append(""); lines.append(c.text) }
        if let c = report.classifierEndToEnd { lines.append(""); lines.append(c.text) }
        if let c = report.classifierCrossImage { lines.append(""); lines.append(c.text) }
        return lines.joined(separator: "\n")
    }
}

/// Pads (or keeps) `text` to `width` characters.
func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: Swift.max(0, width - text.count))
    return right ? fill + text : text + fill
}

struct BenchmarkFailure: Error { let message: String }

/// Runs tools/bench_torch.py with the cases' specs on stdin and reads its JSON answer.
enum TorchComparison {
    static func run(script: String, python: String, threads: Int, cases: [BenchmarkCase],
                    minSeconds: Double) -> Result<(String, [String: Double]), BenchmarkFailure> {
        var specs: [[String: BenchmarkValue]] = []
        for c in cases {
            var s = c.spec
            s["name"] = .string(c.name)
            specs.append(s)
        }
        guard let input = try? JSONEncoder().encode(specs) else { return .failure(BenchmarkFailure(message: "cannot encode specs")) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--threads", String(threads), "--min-seconds", String(minSeconds)]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch {
            return .failure(BenchmarkFailure(message: "cannot start \(python): \(error)"))
        }
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: err, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
            return .failure(BenchmarkFailure(message: "\(script) exited with \(process.terminationStatus): \(text)"))
        }
        struct Answer: Decodable { let torch: String; let milliseconds: [String: Double] }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: out) else {
            return .failure(BenchmarkFailure(message: "\(script) printed no valid JSON"))
        }
        return .success((answer.torch, answer.milliseconds))
    }
}
