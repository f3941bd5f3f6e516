import DiffusionClassifier
import Foundation
import Reports

/// `diffclass report`: a self-contained HTML report of run folders.
struct ReportCommand: Command {
    let name = "report"
    let summary = "write a self-contained HTML report (inline SVG) of a run folder"
    let usage = """
    usage: diffclass report RUN [--compare RUN2,RUN3] [--out FILE]

    Eval runs: accuracy ± stderr, confusion matrix, per-class accuracy, reliability diagram and ECE,
    accuracy against U-Net calls (one point per run; --compare adds runs), analysis.json charts if
    present. Robustness runs: clean and robust accuracy, robust accuracy against epsilon (--compare
    adds runs), breaks per attack, saved adversarial pairs. Default output RUN/report.html.
    """
    let valuedFlags: Set<String> = ["compare", "out"]
    func run(_ args: inout Arguments) throws -> Int32 { try runReport(&args); return 0 }
}

/// `diffclass report RUN [--compare RUN2,RUN3] [--out FILE]`: writes a self-contained HTML
/// report of an eval (and/or analyze) run folder, or of robustness run folders (`RobustReport`),
/// by default `RUN/report.html`.
func runReport(_ args: inout Arguments) throws {
    let compare = args.string("compare").map { $0.split(separator: ",").map { URL(fileURLWithPath: String($0)) } } ?? []
    let out = args.string("out")
    try args.finish(command: "report", takesArguments: true)
    guard args.positional.count == 1 else { throw UsageError("report needs exactly one run folder: diffclass report RUN [--compare RUN2,RUN3]") }
    let directory = URL(fileURLWithPath: args.positional[0])
    if RobustRunData.isRobustFolder(directory) {
        let report = try RobustReport.load(directory, compare: compare)
        let url = out.map { URL(fileURLWithPath: $0) } ?? directory.appendingPathComponent("report.html")
        try report.write(to: url)
        for r in report.runs {
            print(String(format: "%@: %@ eps %@, clean %.2f%% ± %.2f, robust %.2f%% ± %.2f (n = %d)", r.name, r.norm, r.epsText,
                         100 * r.cleanAccuracy, 100 * r.cleanStderr, 100 * r.robustAccuracy, 100 * r.robustStderr, r.n))
        }
        print("wrote \(url.path)")
        return
    }
    let report = try Report.load(directory, compare: compare)
    let url = out.map { URL(fileURLWithPath: $0) } ?? directory.appendingPathComponent("report.html")
    try report.write(to: url)
    let r = report.run
    if r.n > 0 {
        print(String(format: "accuracy %.2f%% ± %.2f (n = %d), %.0f calls/image, ECE %.4f", 100 * r.accuracy, 100 * r.accuracyStderr,
                     r.n, r.meanCalls, r.expectedCalibrationError))
    }
    print("wrote \(url.path)")
}
