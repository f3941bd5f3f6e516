import DiffusionClassifier
import Foundation

/// `diffclass merge RUN_A RUN_B ... --out RUN`: joins shard run folders (see `EvaluationRun.merge`).
func runMerge(_ args: inout Arguments) throws {
    guard let out = args.string("out") else { throw UsageError("merge needs --out RUN") }
    try args.finish(command: "merge")
    let inputs = args.positional
    guard !inputs.isEmpty else { throw UsageError("merge needs run folders: diffclass merge RUN_A RUN_B ... --out RUN") }
    let report = try EvaluationRun.merge(inputs.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: out))
    for (dir, n) in zip(inputs, report.counts) { print("\(dir): \(n) images") }
    if !report.missing.isEmpty {
        let shown = report.missing.prefix(10).map(String.init).joined(separator: ", ")
        print("note: \(report.missing.count) indices below the largest are in no shard (\(shown)\(report.missing.count > 10 ? ", ..." : ""))")
    }
    let s = report.summary
    print(String(format: "merged %d images: accuracy %.2f%% ± %.2f, mean per-class %.2f%%, %.0f calls/image; wrote %@",
                 s.n, 100 * s.accuracy, 100 * s.accuracyStderr, 100 * s.meanPerClassAccuracy, s.meanCalls, out))
}
