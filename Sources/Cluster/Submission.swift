import Foundation
import NeuralNetworks

/// Runs a scheduler command (sbatch, squeue). A protocol so tests can answer for Slurm.
public protocol CommandRunner {
    /// Runs `words` (the first looked up on PATH); returns its exit status and output.
    func run(_ words: [String]) throws -> (status: Int32, out: String, err: String)
}

/// Runs commands as child processes.
public struct ProcessCommandRunner: CommandRunner {
    public init() {}

    public func run(_ words: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = words
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { throw ClusterError("cannot run \(words.first ?? ""): \(error.localizedDescription)") }
        // Read both pipes concurrently: one filling up would block the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async { errBox.data = errHandle.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}

extension ShardPlan {
    /// Writes `RUN/shards/plan.json` (atomically), creating RUN/shards.
    public func write(_ layout: ShardedRunLayout) throws {
        do {
            try FileManager.default.createDirectory(at: layout.shardsDirectory, withIntermediateDirectories: true)
            try encoded().write(to: layout.planURL, options: .atomic)
        } catch {
            throw ClusterError("\(layout.shardsDirectory.path): cannot write the shard plan (\(error.localizedDescription))")
        }
    }
}

extension SlurmJob {
    /// Writes the plan, `RUN/slurm/shard.sh`, `RUN/slurm/merge.sh` (executable) and creates
    /// `RUN/slurm/logs/` (Slurm does not create a log's folder; a task without one fails).
    public func write() throws {
        try plan.write(layout)
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: layout.slurmLogs, withIntermediateDirectories: true)
            for (url, text) in [(layout.shardScript, shardScript), (layout.mergeScript, mergeScript)] {
                try Data(text.utf8).write(to: url, options: .atomic)
                try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
            }
        } catch {
            throw ClusterError("\(layout.slurmDirectory.path): cannot write the batch scripts (\(error.localizedDescription))")
        }
    }

    /// Submits the array, then the merge after it; returns both job ids and appends them to
    /// `RUN/slurm/submissions.log`. A failed sbatch is an error with its message (and, when the
    /// array went in but the merge did not, the command that submits the merge).
    public func submit(runner: CommandRunner) throws -> (array: String, merge: String) {
        let arrayCommand = submitShardsCommand()
        let a = try runner.run(arrayCommand)
        guard a.status == 0 else {
            throw ClusterError(ErrorText("\(Quoting.shell(arrayCommand)) failed (exit \(a.status)): \(a.err.trimmingCharacters(in: .whitespacesAndNewlines)); "
                + "nothing was submitted; the scripts are in \(layout.slurmDirectory.path) (submit them with: \(submitCommandLine()))"))
        }
        let arrayID = try SlurmJob.parseJobID(a.out)
        let mergeCommand = submitMergeCommand(after: arrayID)
        let m = try runner.run(mergeCommand)
        guard m.status == 0, let mergeID = try? SlurmJob.parseJobID(m.out) else {
            throw ClusterError(ErrorText("the shards went in as job \(arrayID), but \(Quoting.shell(mergeCommand)) failed (exit \(m.status)): "
                + "\(m.err.trimmingCharacters(in: .whitespacesAndNewlines)); submit the merge with that command once it can run"))
        }
        let stamp = ISO8601DateFormatter().string(from: Date())
        let line = "\(stamp) array \(arrayID) (shards 0-\(plan.shards - 1)), merge \(mergeID) after it\n"
        if let handle = try? FileHandle(forWritingTo: layout.submissionsLog) {
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try? handle.close()
        } else {
            try? Data(line.utf8).write(to: layout.submissionsLog)
        }
        return (arrayID, mergeID)
    }

    /// The run's queued and running tasks (`squeue --me`), or nil with the reason when the queue
    /// cannot be read (no squeue here, no controller).
    public static func queue(runner: CommandRunner) -> (entries: [SlurmQueueEntry]?, problem: String?) {
        let words = ["squeue", "-h", "-r", "--me", "-o", SlurmQueue.format]
        guard let r = try? runner.run(words) else { return (nil, "cannot run squeue") }
        guard r.status == 0 else { return (nil, "squeue failed: \(r.err.trimmingCharacters(in: .whitespacesAndNewlines))") }
        return (SlurmQueue.parse(r.out), nil)
    }
}

extension KubernetesJob {
    /// Writes the plan, `RUN/k8s/shards.yaml` and `RUN/k8s/merge.yaml`.
    public func write(_ layout: ShardedRunLayout) throws {
        try plan.write(layout)
        do {
            try FileManager.default.createDirectory(at: layout.kubernetesDirectory, withIntermediateDirectories: true)
            try Data(shardManifest.utf8).write(to: layout.kubernetesShardJob, options: .atomic)
            try Data(mergeManifest.utf8).write(to: layout.kubernetesMergeJob, options: .atomic)
        } catch {
            throw ClusterError("\(layout.kubernetesDirectory.path): cannot write the manifests (\(error.localizedDescription))")
        }
    }
}
