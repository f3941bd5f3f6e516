import Cluster
import Foundation
import NeuralNetworks
import XCTest

/// Answers sbatch and squeue from a script, recording what was run.
final class FakeSlurm: CommandRunner {
    var calls: [[String]] = []
    var answers: [(status: Int32, out: String, err: String)]
    init(_ answers: [(Int32, String, String)]) { self.answers = answers.map { ($0.0, $0.1, $0.2) } }
    func run(_ words: [String]) throws -> (status: Int32, out: String, err: String) {
        calls.append(words)
        return answers.isEmpty ? (1, "", "no answer") : answers.removeFirst()
    }
}

/// Runs `script` with bash, returning stdout; fails the test on a non-zero exit.
func bash(_ script: String, env: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", script]
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0, script, file: file, line: line)
    return String(decoding: data, as: UTF8.self)
}

final class ShellRunTests: XCTestCase {
    /// Every awkward character survives a round trip through the shell.
    func testShellQuotingRoundTrips() throws {
        let words = ["plain", "with space", "it's", "\"dq\"", "$HOME", "`id`", "a#b", "100%", "tab\there", "", "*", "-x", "=a", "back\\slash", "naïve"]
        let line = "printf '%s\\n' " + Quoting.shell(words)
        XCTAssertEqual(try bash(line), words.map { $0 + "\n" }.joined())
        XCTAssertEqual(Quoting.shell("models/fashion-mnist"), "models/fashion-mnist")
        XCTAssertEqual(Quoting.shell("a b"), "'a b'")
        XCTAssertEqual(Quoting.shell("it's"), "'it'\\''s'")
    }

    func testSbatchAndYAMLQuoting() {
        XCTAssertEqual(Quoting.sbatchValue("/tmp/a b/\"q\"\\x"), "\"/tmp/a b/\\\"q\\\"\\\\x\"")
        XCTAssertEqual(Quoting.slurmFilenameLiteral("/r/100%/logs"), "/r/100%%/logs")
        XCTAssertEqual(Quoting.yaml("a \"b\"\n\\"), "\"a \\\"b\\\"\\n\\\\\"")
        XCTAssertEqual(Quoting.kubernetesArgument("$(HOME) and $X"), "$$(HOME) and $X")
        XCTAssertThrowsError(try Quoting.checkPath("a\nb", what: "--out")) { XCTAssertTrue("\($0)".contains("--out"), "\($0)") }
        XCTAssertThrowsError(try Quoting.checkPath("a\\b", what: "--out")) { XCTAssertTrue("\($0)".contains("backslash"), "\($0)") }
        XCTAssertNoThrow(try Quoting.checkPath("a\\b", what: "--x", allowBackslash: true))
    }
}

final class ShardedCommandTests: XCTestCase {
    func testParsesAndStripsOut() throws {
        let c = try ShardedCommand(["eval", "--model", "models/fashion-mnist", "--dataset=fashion-mnist", "--limit", "8",
                                    "--n-timesteps", "2", "--out", "runs/x y", "--seed", "3"])
        XCTAssertEqual(c.command, "eval")
        XCTAssertEqual(c.out, "runs/x y")
        XCTAssertEqual(c.limit, 8)
        XCTAssertEqual(c.dataset, "fashion-mnist")
        XCTAssertEqual(c.split, "test")
        XCTAssertEqual(c.arguments, ["--model", "models/fashion-mnist", "--dataset", "fashion-mnist", "--limit", "8",
                                     "--n-timesteps", "2", "--seed", "3"])
        XCTAssertEqual(c.shardWords(shard: "1", count: 4, threads: "2", out: "R/shards/1").suffix(6),
                       ["--shard", "1/4", "--threads", "2", "--out", "R/shards/1"])
        let r = try ShardedCommand(["robust", "--out=R", "--eps", "0.1", "--data", "/d", "--split", "train"])
        XCTAssertEqual(r.out, "R")
        XCTAssertEqual(r.data, "/d")
        XCTAssertEqual(r.split, "train")
    }

    func testRefusalsNameTheFlag() {
        let cases: [([String], String)] = [
            ([], "after --"),
            (["train", "--out", "R"], "'train'"),
            (["eval", "--model", "m"], "--out"),
            (["eval", "--out", "R", "--shard", "0/2"], "--shard"),
            (["eval", "--out", "R", "--threads", "4"], "--threads"),
            (["eval", "--out", "R", "--out", "S"], "--out given twice"),
            (["eval", "--out"], "--out needs a value"),
            (["eval", "--out", "R", "--limit", "0"], "--limit"),
            (["eval", "--out", "R", "--limit", "x"], "--limit"),
            (["eval", "--out", "a\nb"], "--out"),
        ]
        for (words, expected) in cases {
            XCTAssertThrowsError(try ShardedCommand(words), "\(words)") { e in
                XCTAssertTrue("\(e)".contains(expected), "\(words): \(e)")
            }
        }
    }
}

final class ShardPlanTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func plan(run: URL, shards: Int = 3, images: Int = 8, arguments: [String] = ["--model", "m", "--limit", "8"]) throws -> ShardPlan {
        try ShardPlan(scheduler: "slurm", command: try ShardedCommand(["eval"] + arguments + ["--out", run.path]), run: run.path,
                      shards: shards, images: images, workingDirectory: "/work dir", diffclass: "/opt/bin/diffclass", jobName: "diffclass-eval-r")
    }

    func testOwnedIndicesFollowShardRule() throws {
        let p = try plan(run: directory)
        XCTAssertEqual(p.ownedIndices(shard: 0), [0, 3, 6])
        XCTAssertEqual(p.ownedIndices(shard: 1), [1, 4, 7])
        XCTAssertEqual(p.ownedIndices(shard: 2), [2, 5])
        XCTAssertThrowsError(try plan(run: directory, shards: 9)) { XCTAssertTrue(flagged($0).contains("--shards 9"), "\($0)") }
    }

    func testPlanRoundTripsAndGuardsTheFolder() throws {
        let run = directory.appendingPathComponent("run")
        let layout = ShardedRunLayout(run: run)
        let p = try plan(run: run)
        XCTAssertNil(try p.checkCompatible(with: layout))
        try p.write(layout)
        XCTAssertEqual(try ShardPlan.load(layout.planURL), p)
        XCTAssertEqual(try p.checkCompatible(with: layout), p)
        // Other shards or another command: refused, naming what differs.
        XCTAssertThrowsError(try plan(run: run, shards: 4).checkCompatible(with: layout)) { XCTAssertTrue("\($0)".contains("shards: 3 -> 4"), "\($0)") }
        XCTAssertThrowsError(try plan(run: run, arguments: ["--model", "m2", "--limit", "8"]).checkCompatible(with: layout)) {
            XCTAssertTrue("\($0)".contains("arguments"), "\($0)")
        }
        // A folder holding an unsharded run is not taken over.
        let other = directory.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: other.appendingPathComponent("settings.json"))
        XCTAssertThrowsError(try plan(run: other).checkCompatible(with: ShardedRunLayout(run: other))) {
            XCTAssertTrue("\($0)".contains("did not make"), "\($0)")
        }
    }

    func writeResults(_ url: URL, _ indices: [Int], unterminated: Bool = false) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var text = indices.map { "{\"index\":\($0),\"label\":1,\"seconds\":0.5}\n" }.joined()
        if unterminated { text += "{\"index\":9" }
        try Data(text.utf8).write(to: url)
    }

    func testStatusFromResults() throws {
        let run = directory.appendingPathComponent("run")
        let layout = ShardedRunLayout(run: run)
        try writeResults(layout.shard(0).appendingPathComponent("results.jsonl"), [0, 3, 6])
        try writeResults(layout.shard(1).appendingPathComponent("results.jsonl"), [1], unterminated: true)
        var s = try ShardedRunStatus.inspect(layout, shards: 3, images: 8)
        XCTAssertEqual(s.progress.map(\.state), [.complete, .incomplete, .missing])
        XCTAssertEqual(s.progress.map(\.done), [3, 1, 0])
        XCTAssertEqual(s.incomplete, [1, 2])
        XCTAssertFalse(s.merged)
        XCTAssertEqual(s.lines(), ["shard 0: complete, 3 of 3 images", "shard 1: incomplete, 1 of 3 images", "shard 2: missing, 0 of 2 images",
                                   "merge: not run"])
        try writeResults(layout.shard(1).appendingPathComponent("results.jsonl"), [4, 1, 7])
        try writeResults(layout.shard(2).appendingPathComponent("results.jsonl"), [2, 5])
        try writeResults(layout.mergedResults, Array(0..<8))
        try Data("{}".utf8).write(to: layout.mergedSummary)
        s = try ShardedRunStatus.inspect(layout, shards: 3, images: 8)
        XCTAssertTrue(s.allComplete)
        XCTAssertTrue(s.merged)
        XCTAssertEqual(s.lines().last, "merge: done, 8 images in \(run.path), no report.html yet")
        // An index another shard owns, or a line that is not a result: refused, naming the file.
        try writeResults(layout.shard(2).appendingPathComponent("results.jsonl"), [2, 3])
        XCTAssertThrowsError(try ShardedRunStatus.inspect(layout, shards: 3, images: 8)) { XCTAssertTrue("\($0)".contains("shards/2/results.jsonl: line 2 is image 3"), "\($0)") }
        try Data("not json\n".utf8).write(to: layout.shard(2).appendingPathComponent("results.jsonl"))
        XCTAssertThrowsError(try ShardedRunStatus.inspect(layout, shards: 3, images: 8)) { XCTAssertTrue("\($0)".contains("line 1 is not a result line"), "\($0)") }
    }

    func testArrayList() {
        XCTAssertEqual(ShardedRunStatus.arrayList([5, 0, 1, 2, 7, 8]), "0-2,5,7-8")
        XCTAssertEqual(ShardedRunStatus.arrayList([3]), "3")
    }
}

final class SlurmJobTests: XCTestCase {
    func job(run: String = "/runs/a b/it's 100%", options: SlurmOptions = SlurmOptions(partition: "cpu", time: "2:00:00", cpusPerTask: 4,
                                                                                         mem: "8G", extraLines: ["--qos=low", "#SBATCH --account=proj",
                                                                                                      "--comment=two words #1"])) throws -> SlurmJob {
        let command = try ShardedCommand(["eval", "--model", "models/fashion-mnist", "--dataset", "fashion-mnist", "--limit", "8",
                                          "--template", "a photo of a {}.", "--out", run])
        let plan = try ShardPlan(scheduler: "slurm", command: command, run: run, shards: 4, images: 8, workingDirectory: "/home/me/proj x",
                                 diffclass: "/opt/diff class/diffclass", jobName: "diffclass-eval-r")
        return try SlurmJob(plan: plan, options: options)
    }

    func testShardScriptText() throws {
        let s = try job().shardScript
        let lines = s.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "#!/bin/bash")
        let sbatch = lines.filter { $0.hasPrefix("#SBATCH") }
        XCTAssertEqual(sbatch, [
            "#SBATCH --job-name=diffclass-eval-r",
            "#SBATCH --array=0-3",
            "#SBATCH --output=\"/runs/a b/it's 100%%/slurm/logs/%A_%a.out\"",
            "#SBATCH --open-mode=append",
            "#SBATCH --partition=cpu",
            "#SBATCH --time=2:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=8G",
            "#SBATCH --qos=low",
            "#SBATCH --account=proj",
            "#SBATCH --comment=\"two words #1\"",
            "#SBATCH --requeue",
        ])
        // sbatch reads #SBATCH lines only before the first command.
        let firstCommand = lines.firstIndex { !$0.hasPrefix("#") }!
        XCTAssertLessThan(lines.lastIndex { $0.hasPrefix("#SBATCH") }!, firstCommand)
        XCTAssertTrue(lines.contains("cd '/home/me/proj x'"))
        XCTAssertEqual(lines.last, "exec '/opt/diff class/diffclass' eval --model models/fashion-mnist --dataset fashion-mnist --limit 8 "
            + "--template 'a photo of a {}.' --shard \"$shard/4\" --threads \"$threads\" --out '/runs/a b/it'\\''s 100%/shards/'\"$shard\"")
        XCTAssertTrue(lines.contains("threads=\"${SLURM_CPUS_PER_TASK:-1}\""))
    }

    /// The shard script, run by bash with a stand-in diffclass, passes exactly the intended words.
    func testShardScriptRunsTheIntendedCommand() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slurm script \(UUID().uuidString)")
        let bin = dir.appendingPathComponent("bin dir/diffclass")
        try FileManager.default.createDirectory(at: bin.deletingLastPathComponent(), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("#!/bin/bash\nprintf '%s\\n' \"$PWD\" \"$@\"\n".utf8).write(to: bin)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin.path)
        let run = dir.appendingPathComponent("run's \"x\"").path
        let command = try ShardedCommand(["robust", "--eps", "8/255", "--template", "$HOME `x`", "--out", run])
        let plan = try ShardPlan(scheduler: "slurm", command: command, run: run, shards: 2, images: 3, workingDirectory: dir.path,
                                 diffclass: bin.path, jobName: "j")
        let job = try SlurmJob(plan: plan, options: SlurmOptions())
        let script = dir.appendingPathComponent("shard.sh")
        try Data(job.shardScript.utf8).write(to: script)
        let out = try bash("bash \(Quoting.shell(script.path))", env: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_CPUS_PER_TASK": "3"])
        XCTAssertEqual(out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropFirst(), [
            dir.path, "robust", "--eps", "8/255", "--template", "$HOME `x`", "--shard", "1/2", "--threads", "3", "--out", run + "/shards/1", "",
        ])
    }

    func testMergeScriptAndCommands() throws {
        let j = try job()
        let m = j.mergeScript
        XCTAssertTrue(m.contains("#SBATCH --output=\"/runs/a b/it's 100%%/slurm/logs/merge-%j.out\""), m)
        XCTAssertFalse(m.contains("--array"))
        XCTAssertFalse(m.contains("--cpus-per-task"))
        XCTAssertTrue(m.contains("\"$diffclass\" status \"$run\" --shards 4 --images 8 --no-queue"), m)
        XCTAssertTrue(m.contains("\"$diffclass\" merge \"$@\" --out \"$tmp\""), m)
        XCTAssertTrue(m.hasSuffix("\"$diffclass\" report \"$run\"\n"), m)
        XCTAssertEqual(j.submitShardsCommand(), ["sbatch", "--parsable", "/runs/a b/it's 100%/slurm/shard.sh"])
        XCTAssertEqual(j.submitShardsCommand(only: [1, 2, 3]), ["sbatch", "--parsable", "--array=1-3", "/runs/a b/it's 100%/slurm/shard.sh"])
        XCTAssertEqual(j.submitMergeCommand(after: "42"), ["sbatch", "--parsable", "--dependency=afterok:42", "/runs/a b/it's 100%/slurm/merge.sh"])
        XCTAssertEqual(j.submitCommandLine(only: [2, 5]),
                       "jid=$(sbatch --parsable --array=2,5 '/runs/a b/it'\\''s 100%/slurm/shard.sh') && "
                       + "sbatch --dependency=afterok:\"${jid%%;*}\" '/runs/a b/it'\\''s 100%/slurm/merge.sh'")
        XCTAssertEqual(try SlurmJob.parseJobID("123\n"), "123")
        XCTAssertEqual(try SlurmJob.parseJobID("77;cluster\n"), "77")
        XCTAssertThrowsError(try SlurmJob.parseJobID("sbatch: error"))
    }

    /// The merge step run by sh: a stand-in diffclass logs its calls; an incomplete status stops it.
    func testMergeStepRunsInOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("merge step \(UUID().uuidString)")
        let run = dir.appendingPathComponent("run dir")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("calls")
        let bin = dir.appendingPathComponent("fake")
        // merge writes the three files into --out (its last argument); status exits $STATUS.
        let fake = """
        #!/bin/sh
        echo "$*" >> \(Quoting.shell(log.path))
        case "$1" in
          status) exit "${STATUS:-0}" ;;
          merge) for last; do :; done; mkdir -p "$last"; for f in settings.json results.jsonl summary.json; do echo x > "$last/$f"; done ;;
        esac
        """
        try Data(fake.utf8).write(to: bin)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin.path)
        let plan = try ShardPlan(scheduler: "slurm", command: try ShardedCommand(["eval", "--out", run.path]), run: run.path, shards: 3,
                                 images: 5, workingDirectory: nil, diffclass: bin.path, jobName: "j")
        let script = "set -eu\n" + MergeStep.script(plan: plan)
        _ = try bash("sh -c \(Quoting.shell(script))")
        let r = run.path
        XCTAssertEqual(try String(contentsOf: log, encoding: .utf8), """
        status \(r) --shards 3 --images 5 --no-queue
        merge \(r)/shards/0 \(r)/shards/1 \(r)/shards/2 --out \(r)/shards/merging
        report \(r)

        """)
        for f in ["settings.json", "results.jsonl", "summary.json"] { XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(f).path)) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("shards/merging").path))
        // status exit 1 (a shard incomplete): no merge.
        try FileManager.default.removeItem(at: log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        p.environment = ["STATUS": "1", "PATH": "/usr/bin:/bin"]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 1)
        XCTAssertEqual(try String(contentsOf: log, encoding: .utf8), "status \(r) --shards 3 --images 5 --no-queue\n")
    }

    func testOptionValidationNamesTheFlag() {
        let bad: [(SlurmOptions, String)] = [
            (SlurmOptions(partition: "a b"), "--partition"),
            (SlurmOptions(time: "2h"), "--time"),
            (SlurmOptions(mergeTime: "1:2:3:4"), "--merge-time"),
            (SlurmOptions(cpusPerTask: 0), "--cpus-per-task"),
            (SlurmOptions(mem: "8GB"), "--mem"),
            (SlurmOptions(jobName: "a b"), "--job-name"),
            (SlurmOptions(extraLines: ["--array=0-3"]), "writes --array"),
            (SlurmOptions(extraLines: ["-o x"]), "writes --output"),
            (SlurmOptions(extraLines: ["--time=1"]), "use submit's --time"),
            (SlurmOptions(extraLines: ["qos=low"]), "not an sbatch option"),
            (SlurmOptions(extraLines: ["--qos=low\n#SBATCH --x"]), "newline"),
        ]
        for (o, expected) in bad {
            XCTAssertThrowsError(try o.validate(), expected) { XCTAssertTrue(flagged($0).contains(expected), "\($0)") }
        }
        for t in ["30", "30:00", "2:00:00", "1-0", "1-12:00", "2-00:00:00", "UNLIMITED"] { XCTAssertNoThrow(try SlurmOptions(time: t).validate(), t) }
        XCTAssertNoThrow(try SlurmOptions(partition: "cpu,gpu_long", mem: "16000", extraLines: ["--gres=gpu:1", "-A proj"]).validate())
    }

    func testSubmitRunsSbatchTwice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("submit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let j = try job(run: dir.appendingPathComponent("run").path)
        try j.write()
        let attributes = try FileManager.default.attributesOfItem(atPath: j.layout.shardScript.path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o755)
        XCTAssertTrue(FileManager.default.fileExists(atPath: j.layout.slurmLogs.path))
        let fake = FakeSlurm([(0, "41\n", ""), (0, "42\n", "")])
        let ids = try j.submit(runner: fake)
        XCTAssertEqual(ids.array, "41")
        XCTAssertEqual(ids.merge, "42")
        XCTAssertEqual(fake.calls, [j.submitShardsCommand(), j.submitMergeCommand(after: "41")])
        XCTAssertTrue(try String(contentsOf: j.layout.submissionsLog, encoding: .utf8).contains("array 41 (shards 0-3), merge 42"))
        let failing = FakeSlurm([(0, "41\n", ""), (1, "", "sbatch: error: Batch job submission failed")])
        XCTAssertThrowsError(try j.submit(runner: failing)) { XCTAssertTrue("\($0)".contains("went in as job 41"), "\($0)") }
        XCTAssertThrowsError(try j.submit(runner: FakeSlurm([(1, "", "no partition")]))) { XCTAssertTrue("\($0)".contains("no partition"), "\($0)") }
    }

    func testQueueParsingAndAdvice() throws {
        let j = try job(run: "/r")
        let text = """
        12|2|12_2|RUNNING|None|/r/slurm/shard.sh
        12|3|12_3|PENDING|Resources|/r/slurm/shard.sh
        13|N/A|13|PENDING|DependencyNeverSatisfied|/r/slurm/merge.sh
        99|1|99_1|RUNNING|None|/other/slurm/shard.sh
        """
        let entries = SlurmQueue.parse(text)
        XCTAssertEqual(entries.count, 4)
        XCTAssertEqual(entries[2].taskID, nil)
        let q = SlurmQueue.match(entries, job: j)
        XCTAssertEqual(q.shards, [2: "RUNNING, job 12_2", 3: "PENDING, job 12_3, Resources"])
        XCTAssertEqual(q.merges.map(\.jobID), ["13"])
        let progress = [ShardProgress(index: 0, owned: 2, done: 2), ShardProgress(index: 1, owned: 2, done: 1),
                        ShardProgress(index: 2, owned: 2, done: 0), ShardProgress(index: 3, owned: 2, done: 0)]
        let status = ShardedRunStatus(layout: j.layout, shards: 4, images: 8, progress: progress,
                                      merge: MergeProgress(summary: false, report: false, images: 0))
        let advice = SlurmQueue.advice(status: status, job: j, queue: q)
        XCTAssertEqual(advice, [
            "merge job 13 can never start (a shard task failed); cancel it: scancel 13",
            "still queued or running: shard 2-3; wait for them",
            "resubmit the incomplete shards, then the merge:",
            "  jid=$(sbatch --parsable --array=1 /r/slurm/shard.sh) && sbatch --dependency=afterok:\"${jid%%;*}\" /r/slurm/merge.sh",
        ])
        XCTAssertTrue(SlurmQueue.advice(status: status, job: j, queue: nil).contains { $0.contains("not read") })
    }
}

final class KubernetesJobTests: XCTestCase {
    func job(parallelism: Int? = 2) throws -> KubernetesJob {
        let command = try ShardedCommand(["eval", "--model", "/models/fmnist", "--dataset", "fashion-mnist", "--template", "$(NOT_A_VAR) \"x\"",
                                          "--out", "/data/runs/r1"])
        let plan = try ShardPlan(scheduler: "k8s", command: command, run: "/data/runs/r1", shards: 4, images: 10000, workingDirectory: "/data",
                                 diffclass: "diffclass", jobName: "diffclass-eval-r1", namespace: "ml")
        return try KubernetesJob(plan: plan, options: KubernetesOptions(image: "registry.example/diffclass:1.0", namespace: "ml",
                                                                       parallelism: parallelism, cpu: "4", memory: "8Gi",
                                                                       volumes: [(claim: "shared-data", mountPath: "/data")], workingDirectory: "/data"))
    }

    func testIndexedJobManifest() throws {
        let y = try job().shardManifest
        XCTAssertEqual(y, """
        # diffclass eval over 4 shards of 10000 images as a Kubernetes Indexed Job (made by diffclass submit k8s).
        # Not tested against a Kubernetes cluster by diffclass's tests (they check this text only).
        # Pod I runs shard I/4 into /data/runs/r1/shards/I and resumes there when retried; /data/runs/r1 must be on a volume every pod writes.
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: diffclass-eval-r1
          namespace: ml
          labels:
            app.kubernetes.io/name: diffclass
            app.kubernetes.io/component: shards
            diffclass/run: diffclass-eval-r1
        spec:
          completionMode: Indexed
          completions: 4
          parallelism: 2
          backoffLimit: 6
          template:
            metadata:
              labels:
                app.kubernetes.io/name: diffclass
                diffclass/run: diffclass-eval-r1
            spec:
              restartPolicy: Never
              containers:
                - name: shard
                  image: "registry.example/diffclass:1.0"
                  workingDir: "/data"
                  command: ["diffclass"]
                  args:
                    - "eval"
                    - "--model"
                    - "/models/fmnist"
                    - "--dataset"
                    - "fashion-mnist"
                    - "--template"
                    - "$$(NOT_A_VAR) \\"x\\""
                    - "--shard"
                    - "$(JOB_COMPLETION_INDEX)/4"
                    - "--threads"
                    - "$(DIFFCLASS_THREADS)"
                    - "--out"
                    - "/data/runs/r1/shards/$(JOB_COMPLETION_INDEX)"
                  env:
                    - name: JOB_COMPLETION_INDEX
                      valueFrom:
                        fieldRef:
                          fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    - name: DIFFCLASS_THREADS
                      valueFrom:
                        resourceFieldRef:
                          containerName: shard
                          resource: limits.cpu
                          divisor: "1"
                  resources:
                    requests: {cpu: "4", memory: "8Gi"}
                    limits: {cpu: "4", memory: "8Gi"}
                  volumeMounts:
                    - name: volume-0
                      mountPath: "/data"
              volumes:
                - name: volume-0
                  persistentVolumeClaim:
                    claimName: shared-data

        """)
        XCTAssertTrue(try job(parallelism: nil).shardManifest.contains("  parallelism: 4\n"))
    }

    func testMergeJobManifestAndCommands() throws {
        let j = try job()
        let y = j.mergeManifest
        XCTAssertTrue(y.contains("  name: diffclass-eval-r1-merge\n"), y)
        XCTAssertTrue(y.contains("  completions: 1\n"))
        XCTAssertFalse(y.contains("Indexed"))
        XCTAssertTrue(y.contains("command: [\"sh\", \"-c\", \"set -eu\\nrun=/data/runs/r1\\ndiffclass=diffclass\\n\\\"$diffclass\\\" status"), y)
        XCTAssertEqual(KubernetesJob.commands(jobName: "diffclass-eval-r1", namespace: "ml", shardManifest: "r1/k8s/shards.yaml",
                                              mergeManifest: "r1/k8s/merge.yaml"), [
            "kubectl apply -f r1/k8s/shards.yaml",
            "kubectl wait -n ml --for=condition=complete --timeout=-1s job/diffclass-eval-r1 && kubectl apply -f r1/k8s/merge.yaml",
        ])
    }

    func testValidationNamesTheFlag() throws {
        let plan = try ShardPlan(scheduler: "k8s", command: try ShardedCommand(["eval", "--out", "r"]), run: "r", shards: 1, images: 1,
                                 workingDirectory: nil, diffclass: "diffclass", jobName: "ok-name")
        let bad: [(KubernetesOptions, String)] = [
            (KubernetesOptions(image: "a b"), "--image"),
            (KubernetesOptions(image: "i", namespace: "Bad_NS"), "--namespace"),
            (KubernetesOptions(image: "i", cpu: "four"), "--cpu"),
            (KubernetesOptions(image: "i", memory: "8GB"), "--memory"),
            (KubernetesOptions(image: "i", workingDirectory: "rel"), "--working-dir"),
        ]
        for (o, expected) in bad {
            XCTAssertThrowsError(try KubernetesJob(plan: plan, options: o), expected) { XCTAssertTrue(flagged($0).contains(expected), "\($0)") }
        }
        XCTAssertThrowsError(try KubernetesOptions.parseVolume("claim")) { XCTAssertTrue(flagged($0).contains("--volume"), "\($0)") }
        XCTAssertThrowsError(try KubernetesOptions.parseVolume("claim:rel")) { XCTAssertTrue("\($0)".contains("absolute"), "\($0)") }
        var badName = plan
        badName.jobName = "Upper_Case"
        XCTAssertThrowsError(try KubernetesJob(plan: badName, options: KubernetesOptions(image: "i"))) { XCTAssertTrue(flagged($0).contains("--job-name"), "\($0)") }
    }
}

/// An error as the CLI prints it: the settings it names as flags (`job_name` as `--job-name`).
func flagged(_ error: Error) -> String {
    (error as? SettingNamingError)?.text.rendered { "--" + $0.name.replacingOccurrences(of: "_", with: "-") } ?? "\(error)"
}
