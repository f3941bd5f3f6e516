// A calibration file (`--calibration CAL.json`): parsed, then checked against a run's settings.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzSupport

private let name = "fuzz/calibration.json"
private let settings = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 10, schedule: NoiseSchedule(SchedulerConfig()),
                                          method: .fixed(.grid(10)))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCalibration(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    do {
        let c = try CalibrationResult.parse(data, file: name)
        FuzzCheck.require(c.tau.isFinite && c.tau > 0, "accepted tau \(c.tau)")
        do { try c.check(against: settings, file: name) } catch { FuzzCheck.errorNames(error, name) }
    } catch { FuzzCheck.errorNames(error, name) }
    return 0
}
