import Foundation
import XCTest

/// Results must not depend on the machine's load or on `--threads`: the same small `eval` of the
/// shipped Fashion-MNIST model, run once on its own with one thread and then with 1, 2 and 8
/// threads while other CPU-bound processes compete for the cores, must write the same
/// results.jsonl byte for byte (apart from each line's `seconds`). Covers seeded noise and a
/// `--noise` file, and a staged and a fixed-timestep method.
final class LoadStressTests: XCTestCase {
    var binary: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("diffclass")
        }
        #endif
        return Bundle.main.bundleURL.appendingPathComponent("diffclass")
    }

    func run(_ args: [String]) throws -> (status: Int32, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    /// CPU-bound competitors (shell busy loops), one per core but at least two; terminated by the
    /// returned closure.
    func startLoad() throws -> () -> Void {
        let count = Swift.max(2, ProcessInfo.processInfo.activeProcessorCount)
        var busy: [Process] = []
        for _ in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "while :; do :; done"]
            try p.run()
            busy.append(p)
        }
        return {
            for p in busy { p.terminate() }
            for p in busy { p.waitUntilExit() }
        }
    }

    /// results.jsonl with every `"seconds":VALUE` replaced by `"seconds":0`.
    func untimedResults(_ run: URL) throws -> String {
        let text = try String(contentsOf: run.appendingPathComponent("results.jsonl"), encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "\"seconds\":[-+0-9.eE]+")
        return pattern.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "\"seconds\":0")
    }

    /// A safetensors file holding `eps` [draws, 1, 28, 28] of reproducible pseudo-normal values.
    func writeNoiseFile(_ url: URL, draws: Int) throws {
        let count = draws * 28 * 28
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            // Sum of 4 uniforms, centred and scaled to unit variance (good enough for a test).
            var s: Float = 0
            for _ in 0..<4 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                s += Float(state >> 40) / Float(1 << 24)
            }
            values[i] = (s - 2) * Float(3).squareRoot()
        }
        var header = "{\"eps\":{\"dtype\":\"F32\",\"shape\":[\(draws),1,28,28],\"data_offsets\":[0,\(4 * count)]}}"
        while header.utf8.count % 8 != 0 { header += " " }
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: url)
    }

    func testResultsDoNotDependOnLoadOrThreads() throws {
        let fm = FileManager.default
        try XCTSkipUnless(fm.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        try XCTSkipUnless(fm.fileExists(atPath: "models/fashion-mnist/diffusion_pytorch_model.safetensors")
                          && fm.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "the shipped model or Fashion-MNIST is absent")
        let dir = fm.temporaryDirectory.appendingPathComponent("load-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let noise = dir.appendingPathComponent("noise.safetensors")
        try writeNoiseFile(noise, draws: 8)
        let common = ["eval", "--model", "models/fashion-mnist", "--dataset", "fashion-mnist", "--split", "test", "--limit", "3"]
        let methods: [(name: String, flags: [String])] = [
            ("staged-noise-file", ["--stages", "3:4,1:8", "--noise", noise.path]),
            ("fixed-seeded", ["--n-timesteps", "6", "--seed", "7", "--save-errors"]),
        ]
        for method in methods {
            let quiet = dir.appendingPathComponent("\(method.name)-quiet")
            let r = try run(common + method.flags + ["--threads", "1", "--out", quiet.path])
            XCTAssertEqual(r.status, 0, r.err)
            let reference = try untimedResults(quiet)
            XCTAssertEqual(reference.split(separator: "\n").count, 3, reference)
            let stopLoad = try startLoad()
            defer { stopLoad() }
            for threads in [1, 2, 8] {
                let out = dir.appendingPathComponent("\(method.name)-loaded-\(threads)")
                let r = try run(common + method.flags + ["--threads", "\(threads)", "--out", out.path])
                XCTAssertEqual(r.status, 0, r.err)
                XCTAssertEqual(try untimedResults(out), reference, "\(method.name): \(threads) threads under load differ from 1 thread alone")
            }
        }
    }
}
