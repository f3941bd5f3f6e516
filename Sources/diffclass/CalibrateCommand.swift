import DiffusionClassifier
import Foundation

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
