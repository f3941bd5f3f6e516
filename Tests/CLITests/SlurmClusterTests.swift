import Foundation
import XCTest

/// `diffclass submit slurm` against a real Slurm: a single-node cluster on this machine
/// (tools/slurm-test-cluster.sh: munged, slurmctld, slurmd from Debian's packages, which
/// `make test` installs), started once for the class and stopped at the end, also on failure.
/// Skipped only when the Slurm or munge binaries are absent.
///
/// The run: the shipped model on the first 8 Fashion-MNIST test images, 4 timesteps (40 U-Net
/// calls per image, 0.5-1 s each here), one CPU per task. The merged folder must equal
/// an unsharded run of the same command: settings.json byte for byte, results.jsonl byte for
/// byte once each line's `seconds` is taken out, summary.json apart from `total_seconds` and
/// `images_per_second` (timing). Run folders live under a path with a space and a quote.
final class SlurmClusterTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var cluster: URL?
    static var startError: String?
    static var work: URL?
    static var reference: URL?

    static var binary: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("diffclass")
        }
        #endif
        return Bundle.main.bundleURL.appendingPathComponent("diffclass")
    }

    static let command = ["eval", "--model", root.appendingPathComponent("models/fashion-mnist").path, "--dataset", "fashion-mnist",
                          "--limit", "8", "--n-timesteps", "4"]

    static var slurmInstalled: Bool {
        ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"].allSatisfy { tool in
            (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
                FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
            } || FileManager.default.isExecutableFile(atPath: "/usr/sbin/\(tool)")
        }
    }

    /// The environment of every child: ours without SLURM_* (this process may itself run under
    /// Slurm), plus the test cluster's SLURM_CONF and the sbin folder the daemons are in.
    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SLURM_") }
        env["PATH"] = (env["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        if let cluster { env["SLURM_CONF"] = cluster.appendingPathComponent("slurm.conf").path }
        return env
    }

    @discardableResult
    static func run(_ executable: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = environment
        p.currentDirectoryURL = root
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-test-out-\(UUID().uuidString)")
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-test-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    static func diffclass(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try run(binary.path, args) }
    static func shell(_ script: String) throws -> (status: Int32, out: String, err: String) { try run("/bin/bash", ["-c", script]) }

    override class func setUp() {
        super.setUp()
        guard slurmInstalled, FileManager.default.fileExists(atPath: binary.path) else { return }
        do {
            let dir = URL(fileURLWithPath: "/tmp/diffclass-slurm-\(ProcessInfo.processInfo.processIdentifier)")
            let started = try run("/bin/bash", [root.appendingPathComponent("tools/slurm-test-cluster.sh").path, "start", dir.path])
            guard started.status == 0 else {
                startError = "tools/slurm-test-cluster.sh start failed (exit \(started.status)):\n\(started.out)\(started.err)"
                _ = try? run("/bin/bash", [root.appendingPathComponent("tools/slurm-test-cluster.sh").path, "stop", dir.path])
                return
            }
            cluster = dir
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("diffclass slurm's runs \(UUID().uuidString)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            self.work = work
            let ref = work.appendingPathComponent("unsharded")
            let r = try diffclass(command + ["--threads", "1", "--out", ref.path])
            guard r.status == 0 else { startError = "the unsharded reference run failed: \(r.out)\(r.err)"; return }
            reference = ref
        } catch {
            startError = "\(error)"
        }
    }

    override class func tearDown() {
        if let cluster { _ = try? run("/bin/bash", [root.appendingPathComponent("tools/slurm-test-cluster.sh").path, "stop", cluster.path]) }
        cluster = nil
        if let work { try? FileManager.default.removeItem(at: work) }
        super.tearDown()
    }

    func requireCluster() throws {
        try XCTSkipUnless(SlurmClusterTests.slurmInstalled, "Slurm is not installed (slurmctld, slurmd, slurm-client, munge: tools/install-deps.sh installs them)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: SlurmClusterTests.binary.path), "diffclass not built at \(SlurmClusterTests.binary.path)")
        if let e = SlurmClusterTests.startError { XCTFail(e) }
        guard SlurmClusterTests.cluster != nil, SlurmClusterTests.reference != nil else { throw XCTSkip("no cluster (see the failure above)") }
    }

    /// Polls `condition` every 0.1 s for up to `seconds`; on time-out, fails with `what` and the run's logs.
    func wait(_ what: String, run: URL, seconds: Double = 120, _ condition: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("slurm/logs").path)) ?? []
        let text = logs.sorted().map { name in
            "--- \(name)\n" + ((try? String(contentsOf: run.appendingPathComponent("slurm/logs/\(name)"), encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
        let queue = (try? SlurmClusterTests.shell("squeue -a -r -o '%i %T %r %o'").out) ?? ""
        throw TimedOut(description: "timed out after \(Int(seconds)) s waiting for \(what)\nsqueue:\n\(queue)\nlogs:\n\(text)")
    }

    struct TimedOut: Error, CustomStringConvertible { let description: String }

    func lines(_ url: URL) -> Int {
        ((try? Data(contentsOf: url)) ?? Data()).filter { $0 == 0x0A }.count
    }

    /// This run's tasks in the queue, as "ARRAYJOB_TASK" for the shard array.
    func queued(_ run: URL) throws -> [String] {
        let r = try SlurmClusterTests.shell("squeue -h -r -o '%F_%K|%o'")
        return r.out.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "|", maxSplits: 1).map(String.init)
            return parts.count == 2 && parts[1].hasPrefix(run.path + "/slurm/") ? parts[0] : nil
        }
    }

    func assertEqualsReference(_ run: URL, reference: URL? = nil, images: Int = 8, timing: [String] = ["total_seconds", "images_per_second"],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = reference ?? SlurmClusterTests.reference!
        let settings = try Data(contentsOf: run.appendingPathComponent("settings.json"))
        XCTAssertEqual(settings, try Data(contentsOf: ref.appendingPathComponent("settings.json")), "settings.json", file: file, line: line)
        func untimed(_ url: URL) throws -> String {
            try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: #""seconds":[-+0-9.eE]+"#, with: "", options: .regularExpression)
        }
        let merged = try untimed(run.appendingPathComponent("results.jsonl")), unsharded = try untimed(ref.appendingPathComponent("results.jsonl"))
        XCTAssertEqual(merged.split(separator: "\n").count, images, file: file, line: line)
        XCTAssertEqual(merged, unsharded, "results.jsonl apart from seconds", file: file, line: line)
        func summary(_ url: URL) throws -> NSDictionary {
            var s = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("summary.json"))) as! [String: Any]
            for key in timing { s[key] = nil }
            return s as NSDictionary
        }
        XCTAssertEqual(try summary(run), try summary(ref), "summary.json apart from \(timing)", file: file, line: line)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("report.html").path), file: file, line: line)
    }

    /// Four shards as a job array, the merge after them: the merged folder equals the unsharded run.
    func testShardedEvalMergesToTheUnshardedRun() throws {
        try requireCluster()
        let run = SlurmClusterTests.work!.appendingPathComponent("four shards")
        let submitted = try SlurmClusterTests.diffclass(["submit", "slurm", "--shards", "4", "--cpus-per-task", "1", "--time", "10",
                                                         "--sbatch-line", "--comment=diffclass test", "--"] + SlurmClusterTests.command + ["--out", run.path])
        guard submitted.status == 0 else { return XCTFail("submit failed: \(submitted.out)\(submitted.err)") }
        XCTAssertTrue(submitted.out.contains("over 4 shards of 8 images"), submitted.out)
        // The extra #SBATCH line reached Slurm as one option (its value has a space).
        if let job = submitted.out.components(separatedBy: "array job ").dropFirst().first?.prefix(while: \.isNumber), !job.isEmpty {
            let shown = try SlurmClusterTests.shell("scontrol show job \(job)")
            XCTAssertTrue(shown.out.contains("Comment=diffclass test"), shown.out + shown.err)
        } else {
            XCTFail("no array job id in: \(submitted.out)")
        }
        try wait("the merge's report.html", run: run) {
            try FileManager.default.fileExists(atPath: run.appendingPathComponent("report.html").path) && queued(run).isEmpty
        }
        try assertEqualsReference(run)
        for i in 0..<4 { XCTAssertEqual(lines(run.appendingPathComponent("shards/\(i)/results.jsonl")), 2) }
        let status = try SlurmClusterTests.diffclass(["status", run.path])
        XCTAssertEqual(status.status, 0, status.out + status.err)
        XCTAssertTrue(status.out.contains("shard 3: complete, 2 of 2 images"), status.out)
        XCTAssertTrue(status.out.contains("merge: done, 8 images"), status.out)
        let logs = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("slurm/logs").path)
        XCTAssertEqual(logs.filter { $0.hasSuffix(".out") && !$0.hasPrefix("merge-") }.count, 4, "\(logs)")
        XCTAssertEqual(logs.filter { $0.hasPrefix("merge-") }.count, 1, "\(logs)")
    }

    /// A robustness run (PGD, 1 iteration, 2 timesteps, 4 images) as 2 shards: merged like eval
    /// runs, and equal to the unsharded run apart from timing (`seconds` per line; the summary's
    /// `total_seconds` and `mean_seconds_per_attacked`).
    func testShardedRobustRunMergesToTheUnshardedRun() throws {
        try requireCluster()
        let robust = ["robust", "--model", SlurmClusterTests.root.appendingPathComponent("models/fashion-mnist").path, "--dataset", "fashion-mnist",
                      "--limit", "4", "--eps", "0.1", "--attacks", "pgd", "--iterations", "1", "--n-timesteps", "2"]
        let ref = SlurmClusterTests.work!.appendingPathComponent("robust unsharded")
        let unsharded = try SlurmClusterTests.diffclass(robust + ["--threads", "1", "--out", ref.path])
        XCTAssertEqual(unsharded.status, 0, unsharded.out + unsharded.err)
        let run = SlurmClusterTests.work!.appendingPathComponent("robust shards")
        let submitted = try SlurmClusterTests.diffclass(["submit", "slurm", "--shards", "2", "--cpus-per-task", "1", "--"] + robust + ["--out", run.path])
        guard submitted.status == 0 else { return XCTFail("submit failed: \(submitted.out)\(submitted.err)") }
        try wait("the merge's report.html", run: run) {
            try FileManager.default.fileExists(atPath: run.appendingPathComponent("report.html").path) && queued(run).isEmpty
        }
        try assertEqualsReference(run, reference: ref, images: 4, timing: ["total_seconds", "mean_seconds_per_attacked"])
        let report = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(report.contains("robust"), "the merged robust folder's report")
    }

    /// Two shards of 4 images; shard 1's task is cancelled once its first image is written (3 images
    /// of 0.5-1 s each still to go). Its merge can never start; `status` names shard 1
    /// incomplete and prints the commands; running them finishes shard 1 (resuming: the first image
    /// is not redone) and the merge, which equals the unsharded run.
    func testCancelledTaskIsResubmittedWithTheCommandStatusPrints() throws {
        try requireCluster()
        let run = SlurmClusterTests.work!.appendingPathComponent("cancelled \"task\"")
        let submitted = try SlurmClusterTests.diffclass(["submit", "slurm", "--shards", "2", "--cpus-per-task", "1", "--"]
            + SlurmClusterTests.command + ["--out", run.path])
        guard submitted.status == 0 else { return XCTFail("submit failed: \(submitted.out)\(submitted.err)") }
        guard let job = submitted.out.components(separatedBy: "array job ").dropFirst().first?.prefix(while: \.isNumber), !job.isEmpty else {
            return XCTFail("no array job id in: \(submitted.out)")
        }
        let shard1 = run.appendingPathComponent("shards/1/results.jsonl")
        try wait("shard 1's first result line", run: run) { lines(shard1) >= 1 }
        let cancel = try SlurmClusterTests.shell("scancel \(job)_1")
        XCTAssertEqual(cancel.status, 0, cancel.err)
        try wait("shard 1's task to leave the queue and shard 0 to finish", run: run) {
            let q = try queued(run)
            return !q.contains("\(job)_1") && !q.contains("\(job)_0")
        }
        let done = lines(shard1)
        guard done < 4 else { return XCTFail("shard 1 finished all 4 images before scancel reached it; the machine is too fast for this test's timing") }
        XCTAssertEqual(lines(run.appendingPathComponent("shards/0/results.jsonl")), 4)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("summary.json").path), "the merge ran after a cancelled task")

        var status = try SlurmClusterTests.diffclass(["status", run.path])
        try wait("the merge job to be marked DependencyNeverSatisfied", run: run, seconds: 60) {
            status = try SlurmClusterTests.diffclass(["status", run.path])
            return status.out.contains("can never start")
        }
        XCTAssertEqual(status.status, 1, status.out + status.err)
        XCTAssertTrue(status.out.contains("shard 0: complete, 4 of 4 images"), status.out)
        XCTAssertTrue(status.out.contains("shard 1: incomplete, \(done) of 4 images"), status.out)
        XCTAssertTrue(status.out.contains("merge: not run"), status.out)
        let outLines = status.out.split(separator: "\n").map(String.init)
        guard let scancel = outLines.first(where: { $0.contains("cancel it: scancel ") })?.components(separatedBy: "cancel it: ").last,
              let marker = outLines.firstIndex(of: "resubmit the incomplete shards, then the merge:"), marker + 1 < outLines.count else {
            return XCTFail("status printed no scancel or resubmit command:\n\(status.out)")
        }
        let resubmit = outLines[marker + 1].trimmingCharacters(in: .whitespaces)
        XCTAssertTrue(resubmit.contains("--array=1 "), resubmit)
        for command in [scancel, resubmit] {
            let r = try SlurmClusterTests.shell(command)
            XCTAssertEqual(r.status, 0, "\(command): \(r.out)\(r.err)")
        }
        try wait("the resubmitted shard and merge", run: run) {
            try FileManager.default.fileExists(atPath: run.appendingPathComponent("report.html").path) && queued(run).isEmpty
        }
        XCTAssertEqual(lines(shard1), 4)
        try assertEqualsReference(run)
        let after = try SlurmClusterTests.diffclass(["status", run.path])
        XCTAssertEqual(after.status, 0, after.out + after.err)
        XCTAssertTrue(after.out.contains("merge: done, 8 images"), after.out)
        // Two logs for task 1: the cancelled task's, and the resubmitted one's, which resumed after
        // the images already written (its first progress line is image done + 1).
        let logs = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("slurm/logs").path).filter { $0.hasSuffix("_1.out") }
        let texts = try logs.map { try String(contentsOf: run.appendingPathComponent("slurm/logs/\($0)"), encoding: .utf8) }
        XCTAssertEqual(texts.count, 2, "\(logs)")
        XCTAssertEqual(texts.filter { $0.contains("CANCELLED") }.count, 1, texts.joined(separator: "\n---\n"))
        if let resumed = texts.first(where: { !$0.contains("CANCELLED") }) {
            let progress = resumed.split(separator: "\n").filter { $0.contains("/4  ") && $0.contains("  acc ") }
            XCTAssertEqual(progress.first?.hasPrefix("\(done + 1)/4  "), true, resumed)
            XCTAssertEqual(progress.count, 4 - done, resumed)
        }
    }
}
