import Foundation
import XCTest

/// The files a run folder holds (`settings.json`, `results.jsonl`, `summary.json`) are a format:
/// runs recorded earlier must still resume, merge and report. Each case runs `diffclass` on the
/// tiny model (or the tiny Stable Diffusion pipeline) and compares the files with the recorded
/// ones in `Fixtures/run-folders/CASE/`: every key, string, separator and space byte for byte,
/// numbers within a relative 1e-3 (the last bits of float results differ across CPUs and BLAS
/// kernels), and timing values (`seconds`, `total_seconds`, `images_per_second`,
/// `mean_seconds_per_attacked`) not compared. Paths are recorded relative to the test's folder
/// (`$DIR`).
///
/// With `DIFFCLASS_EXACT_RUN_FOLDERS=1`, numbers must match byte for byte too (timing still
/// ignored): the check that a change keeps results identical on the machine that recorded them.
///
/// To record the fixtures again (only when the format is meant to change):
/// `DIFFCLASS_RECORD_RUN_FOLDERS=1 swift test -c release --skip-build --filter testRunFolderFilesKeepTheirFormat`.
extension CLITests {
    /// One case: the commands to run (each a `diffclass` argument list; `$MODEL`, `$DATA`,
    /// `$PIPELINE`, `$PIPEDATA`, `$IDX` (an MNIST-format folder of six 8x8 images) and `$DIR` are replaced), and the run folders to compare.
    struct FolderCase {
        let name: String
        let commands: [[String]]
        let folders: [String]
    }

    static let formatCases: [FolderCase] = [
        FolderCase(name: "eval-staged", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--stages", "2:2,1:4", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-grid", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--n-timesteps", "3", "--loss", "l1",
             "--weighting", "exp", "--tau", "2", "--seed", "3", "--limit", "3", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-list", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--timesteps", "10,500,900", "--weighting", "elbo",
             "--loss", "huber", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-ttest", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--ttest", "--max-scores", "6", "--min-scores", "2",
             "--p-value", "0.3", "--timesteps", "stratified", "--weighting", "exp:3", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-ttest-defaults", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--ttest", "--max-scores", "24", "--limit", "1",
             "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-leader-gap-defaults", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--leader-gap", "--limit", "2", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-leader-gap", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--leader-gap", "--min-scores", "2", "--gap", "1",
             "--max-scores", "8", "--max-probes", "6", "--test-every", "2", "--timesteps", "grid:16", "--noise-by", "timestep",
             "--save-errors", "--t-range", "100:900", "--shard", "1/2", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "replay-and-reuse", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--n-timesteps", "8", "--noise-by", "timestep",
             "--save-errors", "--batch-size", "1", "--out", "$DIR/grid"],
            ["replay", "--run", "$DIR/grid", "--stages", "2:2,1:8", "--out", "$DIR/replay"],
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--leader-gap", "--min-scores", "2", "--max-scores", "8",
             "--noise-by", "timestep", "--save-errors", "--batch-size", "1", "--reuse", "$DIR/grid", "--out", "$DIR/reused"],
        ], folders: ["grid", "replay", "reused"]),
        FolderCase(name: "eval-merge", commands: [
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--n-timesteps", "2", "--shard", "0/2", "--out", "$DIR/s0"],
            ["eval", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--n-timesteps", "2", "--shard", "1/2", "--out", "$DIR/s1"],
            ["merge", "$DIR/s0", "$DIR/s1", "--out", "$DIR/merged"],
        ], folders: ["s0", "merged"]),
        FolderCase(name: "robust", commands: [
            ["robust", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--n-timesteps", "2", "--seed", "3",
             "--attacks", "apgd-ce,square", "--iterations", "2", "--square-queries", "2", "--eps", "1/255", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "robust-lm-merge", commands: [
            ["robust", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--limit", "3", "--n-timesteps", "2", "--norm", "l2",
             "--attacks", "apgd-dlr,pgd", "--iterations", "1", "--eps", "0.5", "--lm", "steps=1,eta=0.1,grad=bpda", "--seed", "2",
             "--eot", "2", "--shard", "0/2", "--out", "$DIR/s0"],
            ["robust", "--model", "$MODEL", "--data", "$DATA", "--split", "train", "--limit", "3", "--n-timesteps", "2", "--norm", "l2",
             "--attacks", "apgd-dlr,pgd", "--iterations", "1", "--eps", "0.5", "--lm", "steps=1,eta=0.1,grad=bpda", "--seed", "2",
             "--eot", "2", "--shard", "1/2", "--out", "$DIR/s1"],
            ["merge", "$DIR/s0", "$DIR/s1", "--out", "$DIR/merged"],
        ], folders: ["s0", "merged"]),
        // An IDX (MNIST-format) dataset: its records carry no image paths or class names.
        FolderCase(name: "eval-idx", commands: [
            ["eval", "--model", "$MODEL", "--data", "$IDX", "--split", "train", "--n-timesteps", "3", "--seed", "1", "--out", "$DIR/run"],
        ], folders: ["run"]),
        FolderCase(name: "eval-idx-merge", commands: [
            ["eval", "--model", "$MODEL", "--data", "$IDX", "--split", "train", "--stages", "2:2,1:4", "--shard", "0/2", "--out", "$DIR/s0"],
            ["eval", "--model", "$MODEL", "--data", "$IDX", "--split", "train", "--stages", "2:2,1:4", "--shard", "1/2", "--out", "$DIR/s1"],
            ["merge", "$DIR/s0", "$DIR/s1", "--out", "$DIR/merged"],
        ], folders: ["s0", "merged"]),
        FolderCase(name: "zeroshot-eval", commands: [
            ["eval", "--model", "$PIPELINE", "--data", "$PIPEDATA", "--image-size", "16", "--n-timesteps", "2", "--weights-dtype", "fp16",
             "--out", "$DIR/run"],
        ], folders: ["run"]),
    ]

    static var idxFixture: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/idx") }

    static var runFolderFixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/run-folders")
    }

    func testRunFolderFilesKeepTheirFormat() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let record = ProcessInfo.processInfo.environment["DIFFCLASS_RECORD_RUN_FOLDERS"] == "1"
        let exact = ProcessInfo.processInfo.environment["DIFFCLASS_EXACT_RUN_FOLDERS"] == "1"
        for c in Self.formatCases {
            let (dir, model, data) = try modelAndDataFolders()
            defer { try? fm.removeItem(at: dir) }
            let pipeData = dir.appendingPathComponent("pipedata")
            for cls in ["cat", "dog"] {
                try fm.createDirectory(at: pipeData.appendingPathComponent(cls), withIntermediateDirectories: true)
                try fm.copyItem(at: image, to: pipeData.appendingPathComponent("\(cls)/x.png"))
            }
            let values = ["$MODEL": model.path, "$DATA": data.path, "$PIPELINE": pipeline.path, "$PIPEDATA": pipeData.path, "$IDX": Self.idxFixture.path,
                          "$DIR": dir.path]
            for command in c.commands {
                let args = command.map { arg in values.reduce(arg) { $0.replacingOccurrences(of: $1.key, with: $1.value) } }
                let r = try run(args + ["--threads", "1"])
                XCTAssertEqual(r.status, 0, "\(c.name): \(args.joined(separator: " ")): \(r.err)")
            }
            for folder in c.folders {
                for file in ["settings.json", "results.jsonl", "summary.json"] {
                    let produced = try String(contentsOf: dir.appendingPathComponent("\(folder)/\(file)"), encoding: .utf8)
                    let text = Self.relativePaths(produced, dir: dir, pipeline: pipeline)
                    let fixture = Self.runFolderFixtures.appendingPathComponent("\(c.name)/\(folder)/\(file)")
                    if record {
                        try fm.createDirectory(at: fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
                        try Data(text.utf8).write(to: fixture)
                        continue
                    }
                    let expected = try String(contentsOf: fixture, encoding: .utf8)
                    if let difference = Self.formatDifference(text, expected, exact: exact) {
                        XCTFail("\(c.name)/\(folder)/\(file): \(difference)\n--- produced:\n\(text)\n--- recorded:\n\(expected)")
                    }
                }
            }
        }
    }

    /// `dir` and the pipeline fixture's path as `$DIR` and `$PIPELINE`, in plain and JSON-escaped
    /// (`\/`) spelling.
    static func relativePaths(_ text: String, dir: URL, pipeline: URL) -> String {
        var out = text
        for (path, name) in [(dir.standardizedFileURL.path, "$DIR"), (pipeline.standardizedFileURL.path, "$PIPELINE")] {
            out = out.replacingOccurrences(of: path.replacingOccurrences(of: "/", with: "\\/"), with: name)
            out = out.replacingOccurrences(of: path, with: name)
        }
        return out
    }

    /// JSON text as tokens: strings (with their quotes and escapes), numbers, and every other
    /// byte (punctuation, spaces, newlines) as a token of its own.
    static func jsonTokens(_ text: String) -> [(text: String, isNumber: Bool)] {
        let chars = Array(text.unicodeScalars)
        var tokens: [(String, Bool)] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\"" {
                var j = i + 1
                while j < chars.count && chars[j] != "\"" { j += chars[j] == "\\" ? 2 : 1 }
                j = Swift.min(j + 1, chars.count)
                tokens.append((String(String.UnicodeScalarView(chars[i..<j])), false))
                i = j
            } else if c == "-" || ("0"..."9").contains(c) {
                var j = i + 1
                while j < chars.count && ("0123456789.eE+-".unicodeScalars.contains(chars[j])) { j += 1 }
                tokens.append((String(String.UnicodeScalarView(chars[i..<j])), true))
                i = j
            } else {
                tokens.append((String(c), false))
                i += 1
            }
        }
        return tokens
    }

    static let timingKeys: Set<String> = ["\"seconds\"", "\"total_seconds\"", "\"images_per_second\"", "\"mean_seconds_per_attacked\""]

    /// nil when `a` and `b` have the same layout and strings, numbers within 1e-3 relative
    /// (integers, and every number when `exact`, byte for byte) and any value after a timing
    /// key; otherwise what differs first.
    static func formatDifference(_ a: String, _ b: String, exact: Bool = false) -> String? {
        let x = jsonTokens(a), y = jsonTokens(b)
        var lastString = ""
        for k in 0..<Swift.min(x.count, y.count) {
            let (s, t) = (x[k], y[k])
            if s.isNumber && t.isNumber {
                if timingKeys.contains(lastString) { continue }
                let integral = !s.text.contains(where: { ".eE".contains($0) }) && !t.text.contains(where: { ".eE".contains($0) })
                if integral || exact {
                    if s.text != t.text { return "token \(k): \(s.text) vs \(t.text) (after \(lastString))" }
                } else {
                    guard let u = Double(s.text), let v = Double(t.text),
                          Swift.abs(u - v) <= 1e-3 * Swift.max(Swift.abs(u), Swift.abs(v)) + 1e-12 else {
                        return "token \(k): \(s.text) vs \(t.text) (after \(lastString))"
                    }
                }
                continue
            }
            if s.text != t.text || s.isNumber != t.isNumber { return "token \(k): '\(s.text)' vs '\(t.text)' (after \(lastString))" }
            if s.text.hasPrefix("\"") { lastString = s.text }
        }
        return x.count == y.count ? nil : "\(x.count) tokens vs \(y.count)"
    }

    /// Folders written before settings.json recorded `kind` resume, merge and report: the kind
    /// is read from their keys and their settings.json is left as it is.
    func testFoldersWrittenBeforeKindStillResume() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        /// Drops the `"kind"` line, as settings.json was written before.
        func makeOld(_ run: String) throws -> String {
            let url = URL(fileURLWithPath: path(run) + "/settings.json")
            let text = try String(contentsOf: url, encoding: .utf8)
            let old = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("\"kind\"") }.joined(separator: "\n")
            XCTAssertNotEqual(old, text, run)
            try Data(old.utf8).write(to: url)
            return old
        }
        let eval = ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "2"]
        let robust = ["robust", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "2", "--seed", "3",
                      "--attacks", "apgd-ce", "--iterations", "1", "--eps", "1/255"]
        for (name, command) in [("e", eval), ("r", robust)] {
            for shard in ["0/2", "1/2"] {
                let out = "\(name)\(shard.prefix(1))"
                XCTAssertEqual(try run(command + ["--shard", shard, "--limit", "2", "--out", path(out)]).status, 0)
                let old = try makeOld(out)
                let resumed = try run(command + ["--shard", shard, "--out", path(out)])
                XCTAssertEqual(resumed.status, 0, resumed.err)
                XCTAssertEqual(try String(contentsOfFile: path(out) + "/settings.json", encoding: .utf8), old, "\(out) settings.json rewritten")
                XCTAssertEqual(try String(contentsOfFile: path(out) + "/results.jsonl", encoding: .utf8).split(separator: "\n").count, 2, out)
            }
            let merged = try run(["merge", path("\(name)0"), path("\(name)1"), "--out", path("\(name)-all")])
            XCTAssertEqual(merged.status, 0, merged.err)
            XCTAssertTrue(merged.out.contains("merged 4 images"), merged.out)
            let report = try run(["report", path("\(name)-all"), "--compare", path("\(name)0")])
            XCTAssertEqual(report.status, 0, report.err)
        }
        // Another kind in the folder: refused, naming the kind.
        let wrong = try run(robust + ["--out", path("e0")])
        XCTAssertEqual(wrong.status, 2)
        XCTAssertTrue(wrong.err.contains("kind eval"), wrong.err)
    }
}
