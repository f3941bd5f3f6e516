import Foundation
import NeuralNetworks

/// What `submit slurm` asks of Slurm besides the array: each is an `#SBATCH` line when set.
public struct SlurmOptions: Equatable, Sendable {
    public var partition: String?
    /// Per shard task; the merge job gets `mergeTime`, or `time` when that is nil.
    public var time: String?
    public var mergeTime: String?
    public var cpusPerTask: Int?
    public var mem: String?
    public var jobName: String?
    /// Extra `#SBATCH` lines, for both scripts (e.g. "--account=proj", "--qos=low", "--gres=gpu:1").
    public var extraLines: [String] = []

    public init(partition: String? = nil, time: String? = nil, mergeTime: String? = nil, cpusPerTask: Int? = nil,
                mem: String? = nil, jobName: String? = nil, extraLines: [String] = []) {
        self.partition = partition
        self.time = time
        self.mergeTime = mergeTime
        self.cpusPerTask = cpusPerTask
        self.mem = mem
        self.jobName = jobName
        self.extraLines = extraLines
    }

    /// The options `submit` writes itself; an `--sbatch-line` may not set them.
    public static let reserved = ["array": "a", "output": "o", "error": "e", "dependency": "d", "open-mode": nil, "parsable": nil,
                                  "job-name": "J", "cpus-per-task": "c", "partition": "p", "time": "t", "mem": nil, "wrap": nil]

    /// Checks every option, naming the flag: partition names (letters, digits, `_.,-`), Slurm
    /// time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, UNLIMITED), memory (an integer with an
    /// optional K/M/G/T suffix), CPUs 1...4096, job names (letters, digits, `_.-`), extra lines
    /// (one sbatch option each, no newline, not one `submit` writes itself).
    public func validate() throws {
        if let p = partition, p.isEmpty || !p.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.,-".contains($0)) }) {
            throw ClusterError("\(Setting.partition): '\(p)' is not a partition name (or a comma-separated list of them)")
        }
        for (flag, value) in [(Setting.time, time), (Setting.mergeTime, mergeTime)] {
            if let t = value, !SlurmOptions.isTime(t) {
                throw ClusterError("\(flag): '\(t)' is not a Slurm time (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED)")
            }
        }
        if let c = cpusPerTask, !(1...4096).contains(c) { throw ClusterError("\(Setting.cpusPerTask) expects an integer in 1...4096, got '\(c)'") }
        if let m = mem, m.range(of: #"^[0-9]+[KMGTkmgt]?$"#, options: .regularExpression) == nil {
            throw ClusterError("\(Setting.mem): '\(m)' is not a Slurm memory size (e.g. 4000, 16G, 512M)")
        }
        if let n = jobName, n.isEmpty || Quoting.jobName(n) != n {
            throw ClusterError("\(Setting.jobName): '\(n)' is not a job name (letters, digits, '_', '.', '-')")
        }
        for line in extraLines {
            let option = try SlurmOptions.extraOption(line)
            let name = option.hasPrefix("--") ? String(option.dropFirst(2).prefix { $0 != "=" && $0 != " " }) : nil
            let short = option.hasPrefix("--") ? nil : String(option.dropFirst().prefix(1))
            for (long, letter) in SlurmOptions.reserved where name == long || (short != nil && short == letter) {
                throw ClusterError("\(Setting.sbatchLine) '\(line)': submit writes --\(long) itself"
                    + (["job-name", "cpus-per-task", "partition", "time", "mem"].contains(long) ? "; use submit's --\(long)" : ""))
            }
        }
    }

    /// An `--sbatch-line` without a leading "#SBATCH": one option such as "--qos=low" or "-A proj".
    public static func extraOption(_ line: String) throws -> String {
        if line.contains(where: { $0.isNewline }) { throw ClusterError("\(Setting.sbatchLine): '\(line.debugDescription)' holds a newline; give one option per \(Setting.sbatchLine)") }
        var text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("#SBATCH") { text = String(text.dropFirst("#SBATCH".count)).trimmingCharacters(in: .whitespaces) }
        guard text.hasPrefix("-"), text.count > 1 else {
            throw ClusterError("\(Setting.sbatchLine): '\(line)' is not an sbatch option (e.g. \(Setting.sbatchLine) --qos=low)")
        }
        return text
    }

    /// An extra option as an `#SBATCH` line's text: `--name=value` gets its value quoted (so
    /// "--comment=two words" stays one option), unless the value is quoted already; anything else
    /// is written as given.
    static func sbatchLine(_ option: String) -> String {
        guard option.hasPrefix("--"), let eq = option.firstIndex(of: "=") else { return option }
        let value = String(option[option.index(after: eq)...])
        if value.first == "\"" || value.first == "'" { return option }
        if !value.contains(where: { $0 == " " || $0 == "\t" || $0 == "#" || $0 == "\\" }) { return option }
        return String(option[...eq]) + Quoting.sbatchValue(value)
    }

    static func isTime(_ t: String) -> Bool {
        if ["UNLIMITED", "INFINITE", "unlimited", "infinite"].contains(t) { return true }
        let patterns = [#"^[0-9]+$"#, #"^[0-9]+:[0-9]{1,2}$"#, #"^[0-9]+:[0-9]{1,2}:[0-9]{1,2}$"#, #"^[0-9]+-[0-9]{1,2}$"#,
                        #"^[0-9]+-[0-9]{1,2}:[0-9]{1,2}$"#, #"^[0-9]+-[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}$"#]
        return patterns.contains { t.range(of: $0, options: .regularExpression) != nil }
    }
}

/// The two batch scripts of a sharded run on Slurm and the sbatch commands that submit them.
///
/// `RUN/slurm/shard.sh` is one job array, `#SBATCH --array=0-(N-1)`: task I runs
/// `diffclass <command> ... --shard I/N --threads $SLURM_CPUS_PER_TASK --out RUN/shards/I`, logging to
/// `RUN/slurm/logs/<array job>_<task>.out`; `--requeue` and `--open-mode=append` because a shard
/// resumes from its results.jsonl, so a requeued or preempted task loses only the image in flight.
/// `RUN/slurm/merge.sh` is the merge step (`MergeStep`), submitted with
/// `--dependency=afterok:<array job>`, so it runs once every task has exited 0; a failed or
/// cancelled task leaves it pending (DependencyNeverSatisfied) and `diffclass status RUN` says what
/// to resubmit. Both scripts `cd` to the directory submit ran in, so relative paths in the command
/// mean what they meant there.
public struct SlurmJob: Sendable {
    public let plan: ShardPlan
    public let options: SlurmOptions
    public let layout: ShardedRunLayout

    public init(plan: ShardPlan, options: SlurmOptions) throws {
        try options.validate()
        try Quoting.checkPath(plan.run, what: "\(Setting.runFolder)")
        try Quoting.checkPath(plan.diffclass, what: "\(Setting.diffclassPath)", allowBackslash: true)
        if let wd = plan.workingDirectory { try Quoting.checkPath(wd, what: "the working directory", allowBackslash: true) }
        self.plan = plan
        self.options = options
        layout = ShardedRunLayout(run: URL(fileURLWithPath: plan.run))
    }

    private func header(name: String, output: String, time: String?, cpus: Int?) -> [String] {
        var lines = ["#SBATCH --job-name=\(name)", "#SBATCH --output=\(Quoting.sbatchValue(output))", "#SBATCH --open-mode=append"]
        if let p = options.partition { lines.append("#SBATCH --partition=\(p)") }
        if let t = time { lines.append("#SBATCH --time=\(t)") }
        if let c = cpus { lines.append("#SBATCH --cpus-per-task=\(c)") }
        if let m = options.mem { lines.append("#SBATCH --mem=\(m)") }
        for extra in options.extraLines { lines.append("#SBATCH " + SlurmOptions.sbatchLine((try? SlurmOptions.extraOption(extra)) ?? extra)) }
        return lines
    }

    private var logs: String { Quoting.slurmFilenameLiteral(layout.slurmLogs.path) }

    /// `RUN/slurm/shard.sh`.
    public var shardScript: String {
        let n = plan.shards
        // The command's own words quoted; the task's shard, threads and folder expanded by the shell.
        let fixed = Quoting.shell([plan.diffclass, plan.command.command] + plan.command.arguments)
        let out = Quoting.shell(layout.shardsDirectory.path + "/")
        var lines = [
            "#!/bin/bash",
            "# diffclass \(plan.command.command) over \(n) shards of \(plan.images) images, one shard per array task (made by diffclass submit slurm).",
            "# Submit all: sbatch \(Quoting.shell(layout.shardScript.path))",
            "# Only some shards: sbatch --array=1,3 \(Quoting.shell(layout.shardScript.path))   (diffclass status \(Quoting.shell(plan.run)) prints the list)",
            "# A shard resumes from RUN/shards/I/results.jsonl, so a requeued task redoes only the image in flight.",
        ]
        lines += header(name: plan.jobName, output: logs + "/%A_%a.out", time: options.time, cpus: options.cpusPerTask)
        lines.insert("#SBATCH --array=0-\(n - 1)", at: lines.firstIndex { $0.hasPrefix("#SBATCH --output") }!)
        lines.append("#SBATCH --requeue")
        lines += [
            "set -eu",
            "shard=\"${SLURM_ARRAY_TASK_ID:?not a Slurm array task: submit this script with sbatch}\"",
            "threads=\"${SLURM_CPUS_PER_TASK:-1}\"",
        ]
        if let wd = plan.workingDirectory { lines.append("cd \(Quoting.shell(wd))") }
        lines += [
            "echo \"diffclass: shard $shard/\(n), job ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID}, host $(hostname), $threads threads, restart ${SLURM_RESTART_COUNT:-0}\"",
            "exec \(fixed) --shard \"$shard/\(n)\" --threads \"$threads\" --out \(out)\"$shard\"",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `RUN/slurm/merge.sh`.
    public var mergeScript: String {
        var lines = [
            "#!/bin/bash",
            "# The merge of the \(plan.shards) shards into \(plan.run) and its report.html (made by diffclass submit slurm).",
            "# Submitted with --dependency=afterok:<array job>; by hand once every shard is complete: sbatch \(Quoting.shell(layout.mergeScript.path))",
        ]
        lines += header(name: plan.jobName + "-merge", output: logs + "/merge-%j.out", time: options.mergeTime ?? options.time, cpus: nil)
        lines.append("set -eu")
        if let wd = plan.workingDirectory { lines.append("cd \(Quoting.shell(wd))") }
        lines += MergeStep.lines(plan: plan)
        return lines.joined(separator: "\n") + "\n"
    }

    /// `sbatch --parsable RUN/slurm/shard.sh` (prints the array's job id), optionally for some shards.
    public func submitShardsCommand(only shards: [Int]? = nil) -> [String] {
        ["sbatch", "--parsable"] + (shards.map { ["--array=" + ShardedRunStatus.arrayList($0)] } ?? []) + [layout.shardScript.path]
    }

    /// `sbatch --parsable --dependency=afterok:JOB RUN/slurm/merge.sh` (no dependency when `after` is nil).
    public func submitMergeCommand(after jobID: String?) -> [String] {
        ["sbatch", "--parsable"] + (jobID.map { ["--dependency=afterok:\($0)"] } ?? []) + [layout.mergeScript.path]
    }

    /// The job id in `sbatch --parsable` output ("123" or "123;cluster").
    public static func parseJobID(_ output: String) throws -> String {
        let line = output.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        let id = line.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else { throw ClusterError("sbatch --parsable printed '\(output)', not a job id") }
        return id
    }

    /// The one-line shell command that submits the shards (all, or `only` these) and then the
    /// merge after them; with `only` empty, the merge alone.
    public func submitCommandLine(only shards: [Int]? = nil) -> String {
        if let shards, shards.isEmpty { return Quoting.shell(submitMergeCommand(after: nil)) }
        return "jid=$(\(Quoting.shell(submitShardsCommand(only: shards)))) && "
            + "sbatch --dependency=afterok:\"${jid%%;*}\" \(Quoting.shell(layout.mergeScript.path))"
    }
}

/// A row of `squeue -h -r -o SlurmQueue.format`: the run's queued or running tasks, matched to
/// it by the batch script's path (so shards resubmitted by hand are seen too).
public struct SlurmQueueEntry: Equatable, Sendable {
    public let arrayJobID: String
    /// The array task id; nil for a job that is not an array task.
    public let taskID: Int?
    public let jobID: String
    public let state: String
    public let reason: String
    public let command: String
}

public enum SlurmQueue {
    /// `%F` array job id, `%K` array task id, `%i` job id, `%T` state, `%r` reason, `%o` command
    /// (last, since a path may hold the separator).
    public static let format = "%F|%K|%i|%T|%r|%o"

    public static func parse(_ text: String) -> [SlurmQueueEntry] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let parts = line.split(separator: "|", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 6 else { return nil }
            return SlurmQueueEntry(arrayJobID: parts[0], taskID: Int(parts[1]), jobID: parts[2], state: parts[3], reason: parts[4],
                                   command: parts[5])
        }
    }

    /// What the queue says of this run: per shard, its task's state ("RUNNING, job 12_3"); the
    /// queued merge jobs.
    public static func match(_ entries: [SlurmQueueEntry], job: SlurmJob) -> (shards: [Int: String], merges: [SlurmQueueEntry]) {
        var shards: [Int: String] = [:]
        var merges: [SlurmQueueEntry] = []
        for e in entries {
            if e.command == job.layout.shardScript.path, let t = e.taskID, (0..<job.plan.shards).contains(t) {
                shards[t] = "\(e.state), job \(e.arrayJobID)_\(t)" + (e.state == "PENDING" && e.reason != "None" ? ", \(e.reason)" : "")
            } else if e.command == job.layout.mergeScript.path {
                merges.append(e)
            }
        }
        return (shards, merges)
    }

    /// What to do next, as lines: resubmit the incomplete shards not in the queue (with the merge
    /// after them), or submit the merge, cancelling merge jobs that can never start.
    public static func advice(status: ShardedRunStatus, job: SlurmJob, queue: (shards: [Int: String], merges: [SlurmQueueEntry])?) -> [String] {
        var out: [String] = []
        let queued = queue?.shards ?? [:]
        let waiting = status.incomplete.filter { queued[$0] != nil }
        let lost = status.incomplete.filter { queued[$0] == nil }
        let stuck = (queue?.merges ?? []).filter { $0.reason.contains("DependencyNeverSatisfied") }
        let liveMerge = (queue?.merges ?? []).contains { !$0.reason.contains("DependencyNeverSatisfied") }
        if !stuck.isEmpty {
            out.append("merge job \(stuck.map(\.jobID).joined(separator: ", ")) can never start (a shard task failed); cancel it: scancel \(stuck.map(\.jobID).joined(separator: " "))")
        }
        if !waiting.isEmpty { out.append("still queued or running: shard \(ShardedRunStatus.arrayList(waiting)); wait for them") }
        if queue == nil && !status.incomplete.isEmpty {
            out.append("(the Slurm queue was not read: check with squeue --me that these shards are not still running before resubmitting)")
        }
        if !lost.isEmpty {
            out.append("resubmit the incomplete shards, then the merge:")
            out.append("  " + job.submitCommandLine(only: lost))
        } else if status.allComplete && !status.merged && !liveMerge {
            out.append("every shard is complete; merge:")
            out.append("  " + job.submitCommandLine(only: []))
        }
        return out
    }
}
