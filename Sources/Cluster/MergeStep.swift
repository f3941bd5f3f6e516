import Foundation

/// The step after the shards, the same under every scheduler: a POSIX `sh` script that checks that
/// every shard is complete (`diffclass status`, exit 1 otherwise, so a merge never silently joins
/// part of a run), joins the shard folders with `diffclass merge` into a fresh temporary folder,
/// moves its `settings.json`, `results.jsonl` and `summary.json` into RUN (summary last: its
/// presence says the merge finished), and writes RUN/report.html with `diffclass report`.
/// Rerunning it (after resubmitted shards) replaces the merged files.
public enum MergeStep {
    /// The script's lines, `run` and `diffclass` as the task sees them.
    public static func lines(plan: ShardPlan) -> [String] {
        [
            "run=\(Quoting.shell(plan.run))",
            "diffclass=\(Quoting.shell(plan.diffclass))",
            "\"$diffclass\" status \"$run\" --shards \(plan.shards) --images \(plan.images) --no-queue",
            "tmp=\"$run/shards/merging\"",
            "rm -rf \"$tmp\"",
            "set --",
            "i=0",
            "while [ \"$i\" -lt \(plan.shards) ]; do set -- \"$@\" \"$run/shards/$i\"; i=$((i + 1)); done",
            "\"$diffclass\" merge \"$@\" --out \"$tmp\"",
            "mv -f \"$tmp/settings.json\" \"$tmp/results.jsonl\" \"$run/\"",
            "mv -f \"$tmp/summary.json\" \"$run/\"",
            "rmdir \"$tmp\"",
            "\"$diffclass\" report \"$run\"",
        ]
    }

    public static func script(plan: ShardPlan) -> String { lines(plan: plan).joined(separator: "\n") + "\n" }
}
