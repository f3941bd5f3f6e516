import DiffusionClassifier
import Foundation
import Robustness

/// `diffclass merge`: shard run folders joined into one.
struct MergeCommand: Command {
    let name = "merge"
    let summary = "join shard run folders into one"
    let usage = """
    usage: diffclass merge RUN_A RUN_B ... --out RUN [--partial]

    Joins run folders of equal settings (eval, replay or robust; shards made with --shard I/N):
    results.jsonl sorted by index, summary.json recomputed. An image of the run (its --limit, or the
    dataset) that no shard has is refused, naming the indices, before anything is written; --partial
    merges what there is and lists them.
    """
    let valuedFlags: Set<String> = ["out"]
    let switches: Set<String> = ["partial"]
    func run(_ args: inout Arguments) throws -> Int32 { try runMerge(&args); return 0 }
}

/// `diffclass merge RUN_A RUN_B ... --out RUN`: joins shard run folders (see `EvaluationRun.merge`;
/// robustness run folders: `RobustnessRun.merge`).
func runMerge(_ args: inout Arguments) throws {
    guard let out = args.string("out") else { throw UsageError("merge needs --out RUN") }
    let partial = args.flag("partial")
    try args.finish(command: "merge", takesArguments: true)
    let inputs = args.positional
    guard !inputs.isEmpty else { throw UsageError("merge needs run folders: diffclass merge RUN_A RUN_B ... --out RUN") }
    if let first = inputs.first, RunKind.of(URL(fileURLWithPath: first)) == .robust {
        let report = try RobustnessRun.merge(inputs.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: out), allowPartial: partial)
        for (dir, n) in zip(inputs, report.counts) { print("\(dir): \(n) images") }
        printMissing(report.missing)
        let s = report.summary
        print(String(format: "merged %d images: clean %.2f%% ± %.2f, robust %.2f%% ± %.2f; %.0f U-Net passes, %.1f s per attacked image; wrote %@",
                     s.n, 100 * s.cleanAccuracy, 100 * s.cleanStderr, 100 * s.robustAccuracy, 100 * s.robustStderr,
                     s.meanUnetPassesPerAttacked, s.meanSecondsPerAttacked, out))
        return
    }
    let report = try EvaluationRun.merge(inputs.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: out), allowPartial: partial)
    for (dir, n) in zip(inputs, report.counts) { print("\(dir): \(n) images") }
    printMissing(report.missing)
    let s = report.summary
    print(String(format: "merged %d images: %@, mean per-class %.2f%%, %.0f calls/image; wrote %@",
                 s.n, accuracyText(s), 100 * s.meanPerClassAccuracy, s.meanCalls, out))
}

private func printMissing(_ missing: [Int]) {
    guard !missing.isEmpty else { return }
    let shown = missing.prefix(10).map(String.init).joined(separator: ", ")
    print("note (--partial): \(missing.count) images of the run are in no shard (\(shown)\(missing.count > 10 ? ", ..." : ""))")
}
