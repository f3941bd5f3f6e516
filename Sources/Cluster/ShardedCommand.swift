import Foundation

/// The `diffclass eval|robust ...` command a sharded run runs once per shard: the user's words
/// after `submit ... --`, with `--out RUN` taken out (each shard gets `--out RUN/shards/I`,
/// `--shard I/N` and `--threads` from the scheduler), checked for what sharding needs.
public struct ShardedCommand: Codable, Equatable, Sendable {
    /// `eval` or `robust`.
    public var command: String
    /// The words after the command, in the order given, without `--out RUN`.
    public var arguments: [String]
    /// `--out` as given.
    public var out: String
    /// `--limit` when given.
    public var limit: Int?
    /// The data flags, for counting the images (`--dataset`, `--data`, `--split`).
    public var dataset: String?, data: String?, split: String

    /// The commands that write shardable, mergeable run folders.
    public static let shardable = ["eval", "robust"]

    /// Parses the words after `--`. Refused, naming the flag: no command or another command than
    /// eval/robust, no `--out`, `--shard` or `--threads` (the scheduler sets them), a flag given
    /// twice, a flag without its value, a `--limit` that is not a positive integer.
    public init(_ words: [String]) throws {
        guard let first = words.first else {
            throw ClusterError("submit: give the command to shard after --, e.g. -- eval --model DIR --dataset fashion-mnist --out RUN")
        }
        guard ShardedCommand.shardable.contains(first) else {
            throw ClusterError("submit: '\(first)' after -- is not a shardable command (eval or robust: their shard run folders merge into one)")
        }
        let command = first
        var rest: [String] = []
        var out: String?, limit: String?, dataset: String?, data: String?, split: String?
        var i = 1
        while i < words.count {
            let word = words[i]
            var name: String?, value: String?
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    name = String(body[..<eq]); value = String(body[body.index(after: eq)...])
                } else {
                    name = String(body)
                }
            }
            switch name {
            case "shard"?:
                throw ClusterError("\(command) --shard: submit gives each task its shard (--shards N on submit); remove --shard")
            case "threads"?:
                throw ClusterError("\(command) --threads: each task's threads are its CPUs (--cpus-per-task on submit slurm, --cpu on submit k8s); remove --threads")
            case let flag? where ["out", "limit", "dataset", "data", "split"].contains(flag):
                if value == nil {
                    guard i + 1 < words.count, !words[i + 1].hasPrefix("--") else { throw ClusterError("\(command) --\(flag) needs a value") }
                    i += 1
                    value = words[i]
                }
                let v = value!
                let previous: String?
                switch flag {
                case "out": previous = out; out = v
                case "limit": previous = limit; limit = v
                case "dataset": previous = dataset; dataset = v
                case "data": previous = data; data = v
                default: previous = split; split = v
                }
                guard previous == nil else { throw ClusterError("\(command) --\(flag) given twice") }
                if flag != "out" { rest += ["--\(flag)", v] }
            default:
                rest.append(word)
            }
            i += 1
        }
        self.command = command
        guard let out, !out.isEmpty else { throw ClusterError("submit: the \(command) command after -- needs --out RUN") }
        try Quoting.checkPath(out, what: "\(command) --out")
        if let limit {
            guard let n = Int(limit), n >= 1 else { throw ClusterError("\(command) --limit expects a positive integer, got '\(limit)'") }
            self.limit = n
        }
        for w in rest where w.unicodeScalars.contains(where: { $0.value == 0 }) {
            throw ClusterError("\(command): an argument holds a NUL byte")
        }
        self.out = out
        self.arguments = rest
        self.dataset = dataset
        self.data = data
        self.split = split ?? "test"
    }

    /// The words of shard `index` of `count` as a process argument list (after the binary):
    /// the command, its arguments, then `--shard`, `--threads`, `--out`.
    public func shardWords(shard: String, count: Int, threads: String, out: String) -> [String] {
        [command] + arguments + ["--shard", "\(shard)/\(count)", "--threads", threads, "--out", out]
    }
}

/// Where a sharded run keeps what (all under RUN, the `--out` of the sharded command):
/// `RUN/shards/I` the shard run folders, `RUN/shards/plan.json` the plan, `RUN/slurm/` or
/// `RUN/k8s/` the scheduler's files, and the merged run folder is RUN itself (`settings.json`,
/// `results.jsonl`, `summary.json`, `report.html`), so every command that reads a run folder
/// reads RUN as if it had run unsharded.
public struct ShardedRunLayout: Sendable {
    public let run: URL
    public init(run: URL) { self.run = run }
    public var shardsDirectory: URL { run.appendingPathComponent("shards") }
    public var planURL: URL { shardsDirectory.appendingPathComponent("plan.json") }
    public func shard(_ i: Int) -> URL { shardsDirectory.appendingPathComponent(String(i)) }
    public var slurmDirectory: URL { run.appendingPathComponent("slurm") }
    public var slurmLogs: URL { slurmDirectory.appendingPathComponent("logs") }
    public var shardScript: URL { slurmDirectory.appendingPathComponent("shard.sh") }
    public var mergeScript: URL { slurmDirectory.appendingPathComponent("merge.sh") }
    public var submissionsLog: URL { slurmDirectory.appendingPathComponent("submissions.log") }
    public var kubernetesDirectory: URL { run.appendingPathComponent("k8s") }
    public var kubernetesShardJob: URL { kubernetesDirectory.appendingPathComponent("shards.yaml") }
    public var kubernetesMergeJob: URL { kubernetesDirectory.appendingPathComponent("merge.yaml") }
    public var mergedResults: URL { run.appendingPathComponent("results.jsonl") }
    public var mergedSummary: URL { run.appendingPathComponent("summary.json") }
    public var mergedSettings: URL { run.appendingPathComponent("settings.json") }
    public var report: URL { run.appendingPathComponent("report.html") }
}
