import DiffusionClassifier
import Foundation

/// `diffclass calibrate`: the posterior temperature fitted on an eval run.
struct CalibrateCommand: Command {
    let name = "calibrate"
    let summary = "fit the posterior temperature tau on an eval run"
    let usage = """
    usage: diffclass calibrate --run RUN --out CAL.json

    Fits the posterior temperature tau (p = softmax(-tau * mean error)) by NLL on an eval run folder
    (run eval on held-out images first, e.g. --split train --limit 1000); writes tau, NLL and ECE
    (15 bins) before (tau = 1) and after. 'diffclass eval --calibration CAL.json' then uses it.
    """
    let valuedFlags: Set<String> = ["run", "out"]
    func run(_ args: inout Arguments) throws -> Int32 { try runCalibrate(&args); return 0 }
}

/// `diffclass calibrate --run RUN --out CAL.json`: fits the posterior temperature tau on an
/// evaluation run's mean errors (see `Calibration`); `eval --calibration CAL.json` then uses it.
func runCalibrate(_ args: inout Arguments) throws {
    guard let out = args.string("out") else { throw UsageError("calibrate needs --out CAL.json") }
    guard let run = args.string("run") else {
        throw UsageError("calibrate needs --run RUN (an eval run folder on held-out images, e.g. --split train --limit N)")
    }
    try args.finish(command: "calibrate")
    let result = try CalibrationResult.fit(run: URL(fileURLWithPath: run))
    try result.encoded().write(to: URL(fileURLWithPath: out), options: .atomic)
    if result.split == "test" {
        print("note: \(run) is on the test split; fit tau on held-out images (e.g. eval --split train) before evaluating on test")
    }
    if result.tau < 1.001e-3 || result.tau > 0.999e9 {
        print("note: tau is at the end of its search range [1e-3, 1e9]: the errors carry (almost) no information about the labels, or separate them perfectly")
    }
    print(String(format: "tau %.6g on %d images (accuracy %.2f%%): NLL %.4f -> %.4f, ECE (%d bins) %.4f -> %.4f; wrote %@",
                 result.tau, result.n, 100 * result.accuracy, result.nllBefore, result.nllAfter, result.bins,
                 result.eceBefore, result.eceAfter, out))
}
