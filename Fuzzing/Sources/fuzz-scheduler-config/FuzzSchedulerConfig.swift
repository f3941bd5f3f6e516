// scheduler_config.json: parse and validate, then the noise schedule built from it (what every
// command does next) and its coefficients at the first and last timestep.
import Diffusion
import Foundation
import FuzzSupport

private let name = "fuzz/scheduler_config.json"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchedulerConfig(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    let config: SchedulerConfig
    do { config = try SchedulerConfig.parse(data, file: name) } catch {
        FuzzCheck.errorNames(error, name)
        return 0
    }
    let schedule = NoiseSchedule(config)
    FuzzCheck.require(schedule.numTrainTimesteps == config.numTrainTimesteps, "schedule has \(schedule.numTrainTimesteps) steps, config \(config.numTrainTimesteps)")
    _ = schedule.coefficients(0)
    _ = schedule.coefficients(schedule.numTrainTimesteps - 1)
    _ = schedule.prediction
    return 0
}
