import Foundation
import XCTest

/// `diffclass submit` and `diffclass status` without a scheduler: bad input names the flag (exit
/// 2, nothing written), `--dry-run` prints and writes nothing, `submit k8s` writes its manifests,
/// `status` reads a folder's shards. The runs through a real Slurm are in SlurmClusterTests.
final class SubmitCLITests: XCTestCase {
    var binary: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("diffclass")
        }
        #endif
        return Bundle.main.bundleURL.appendingPathComponent("diffclass")
    }

    var directory: URL!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("submit cli \(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let directory { try? FileManager.default.removeItem(at: directory) } }

    func run(_ args: [String], path: String = "/usr/bin:/bin") throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SLURM_") }
        env["PATH"] = path
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// A folder dataset of `n` PNG-named files (submit only lists them, never decodes them).
    func imageFolder(_ n: Int) throws -> URL {
        let data = directory.appendingPathComponent("images")
        for i in 0..<n {
            let cls = data.appendingPathComponent(i % 2 == 0 ? "cat" : "dog")
            try FileManager.default.createDirectory(at: cls, withIntermediateDirectories: true)
            try Data().write(to: cls.appendingPathComponent("\(i).png"))
        }
        return data
    }

    func testBadInputNamesTheFlagAndWritesNothing() throws {
        let data = try imageFolder(6).path
        let out = directory.appendingPathComponent("run").path
        let eval = ["eval", "--model", "m", "--data", data, "--out", out]
        let cases: [([String], String)] = [
            (["submit"], "needs a scheduler"),
            (["submit", "pbs", "--", "eval"], "unknown scheduler 'pbs'"),
            (["submit", "slurm", "--shards", "2"], "after --"),
            (["submit", "slurm", "--"] + eval, "needs --shards"),
            (["submit", "slurm", "--shards", "0", "--"] + eval, "--shards expects"),
            (["submit", "slurm", "--shards", "7", "--"] + eval, "--shards 7: more shards than the run's 6 images"),
            (["submit", "slurm", "--shards", "2", "--time", "2 hours", "--"] + eval, "--time"),
            (["submit", "slurm", "--shards", "2", "--mem", "lots", "--"] + eval, "--mem"),
            (["submit", "slurm", "--shards", "2", "--partition", "a;b", "--"] + eval, "--partition"),
            (["submit", "slurm", "--shards", "2", "--sbatch-line", "--array=0-9", "--"] + eval, "writes --array"),
            (["submit", "slurm", "--shards", "2", "--diffclass", "/nonexistent/diffclass", "--"] + eval, "--diffclass"),
            (["submit", "slurm", "--shards", "2", "--gpus", "1", "--"] + eval, "unknown option --gpus"),
            (["submit", "slurm", "--shards", "2", "--", "train", "--out", out], "'train'"),
            (["submit", "slurm", "--shards", "2", "--"] + eval + ["--shard", "0/2"], "--shard"),
            (["submit", "slurm", "--shards", "2", "--"] + eval + ["--threads", "4"], "--threads"),
            (["submit", "slurm", "--shards", "2", "--", "eval", "--model", "m", "--data", data], "needs --out"),
            (["submit", "slurm", "--shards", "2", "--", "eval", "--data", directory.appendingPathComponent("nothing").path, "--out", out], "--images N"),
            (["submit", "k8s", "--shards", "2", "--"] + eval, "--image"),
            (["submit", "k8s", "--shards", "2", "--image", "i", "--volume", "data", "--"] + eval, "--volume"),
            (["submit", "k8s", "--shards", "2", "--image", "i", "--cpu", "lots", "--"] + eval, "--cpu"),
            (["status"], "one run folder"),
            (["status", out], "--shards N and --images M"),
        ]
        for (args, expected) in cases {
            let r = try run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.out)\(r.err)")
            XCTAssertTrue(r.err.contains(expected), "\(args): expected '\(expected)' in: \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args) wrote \(out)")
        }
    }

    func testSlurmDryRunPrintsAndWritesNothing() throws {
        let data = try imageFolder(6).path
        let out = directory.appendingPathComponent("dry run").path
        let r = try run(["submit", "slurm", "--shards", "3", "--partition", "cpu", "--time", "1:00:00", "--cpus-per-task", "2", "--mem", "4G",
                         "--sbatch-line", "--qos=low", "--sbatch-line=--account=proj", "--dry-run", "--",
                         "eval", "--model", "m", "--data", data, "--limit", "5", "--out", out])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        for expected in ["#SBATCH --array=0-2", "#SBATCH --partition=cpu", "#SBATCH --time=1:00:00", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
                         "#SBATCH --qos=low", "#SBATCH --account=proj", "#SBATCH --requeue", "over 3 shards of 5 images",
                         "--shard \"$shard/3\" --threads \"$threads\"", "status \"$run\" --shards 3 --images 5 --no-queue",
                         "jid=$(sbatch --parsable '\(out)/slurm/shard.sh')", "--dependency=afterok:"] {
            XCTAssertTrue(r.out.contains(expected), "expected '\(expected)' in:\n\(r.out)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testKubernetesWritesManifestsAndStatusReadsShards() throws {
        let data = try imageFolder(6).path
        let out = directory.appendingPathComponent("k8s run").path
        let args = ["submit", "k8s", "--shards", "2", "--image", "example/diffclass:1", "--cpu", "2", "--memory", "4Gi",
                    "--volume", "shared:/data", "--volume=models:/models", "--namespace", "ml", "--", "eval", "--model", "/models/m", "--data", data, "--out", out]
        let written = try run(args)
        XCTAssertEqual(written.status, 0, written.out + written.err)
        XCTAssertTrue(written.out.contains("not tested against a Kubernetes cluster"), written.out)
        XCTAssertTrue(written.out.contains("kubectl apply -f '\(out)/k8s/shards.yaml'"), written.out)
        let yaml = try String(contentsOf: URL(fileURLWithPath: out + "/k8s/shards.yaml"), encoding: .utf8)
        for expected in ["completionMode: Indexed", "completions: 2", "parallelism: 2", "\"$(JOB_COMPLETION_INDEX)/2\"", "claimName: shared",
                         "claimName: models", "namespace: ml", "image: \"example/diffclass:1\"", "name: diffclass-eval-k8s-run"] {
            XCTAssertTrue(yaml.contains(expected), "expected '\(expected)' in:\n\(yaml)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/k8s/merge.yaml"))
        // status: from results.jsonl lines alone; shard 0 owns images 0, 2, 4.
        try FileManager.default.createDirectory(atPath: out + "/shards/0", withIntermediateDirectories: true)
        try Data("{\"index\":0}\n{\"index\":2}\n{\"index\":4}\n".utf8).write(to: URL(fileURLWithPath: out + "/shards/0/results.jsonl"))
        let status = try run(["status", out])
        XCTAssertEqual(status.status, 1, status.out + status.err)
        XCTAssertTrue(status.out.contains("shard 0: complete, 3 of 3 images"), status.out)
        XCTAssertTrue(status.out.contains("shard 1: missing, 0 of 3 images"), status.out)
        XCTAssertTrue(status.out.contains("kubectl delete -n ml --ignore-not-found job/diffclass-eval-k8s-run job/diffclass-eval-k8s-run-merge"), status.out)
        // Another shard count for the same folder is refused.
        var threeShards = args
        threeShards[3] = "3"
        let again = try run(threeShards)
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.err.contains("shards: 2 -> 3"), again.err)
    }

    /// Without sbatch on PATH a real submit fails naming sbatch, after writing the scripts.
    func testSlurmSubmitWithoutSbatchSaysSo() throws {
        let data = try imageFolder(4).path
        let out = directory.appendingPathComponent("no sbatch").path
        let emptyPath = directory.appendingPathComponent("empty bin")
        try FileManager.default.createDirectory(at: emptyPath, withIntermediateDirectories: true)
        let r = try run(["submit", "slurm", "--shards", "2", "--", "eval", "--model", "m", "--data", data, "--out", out], path: emptyPath.path)
        XCTAssertEqual(r.status, 2, r.out + r.err)
        XCTAssertTrue(r.err.contains("sbatch --parsable") && r.err.contains("failed"), r.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/slurm/shard.sh"))
    }
}
