// A run folder's results.jsonl, read as `eval` and as `robust` read it on resume and `merge`,
// `calibrate` and `replay` read it: the records (each line re-encoded must read back equal), the
// summary over them, a temperature fitted on them, and a replay of each image that recorded its
// per-probe errors over exactly its recorded timesteps.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzSupport
import Robustness

private let name = "fuzz-run/results.jsonl"
private let schedule = NoiseSchedule(SchedulerConfig())
private let evalSettings = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: 10, schedule: schedule,
                                              method: .fixed(.grid(10)))
private let robustSettings = try! RobustnessSettings(model: "m", dataset: "d", split: "test", norm: .linf, epsText: "8/255",
                                                     attacks: [.apgdCE])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunResults(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    do {
        let records = try EvaluationRun.parseResults(data, path: name).map(\.record)
        for r in records {
            let again = try ImageRecord.parse(r.line().dropLast())
            FuzzCheck.require(again == r, "record \(r.index) does not read back equal after writing")
            _ = (r.comparableErrors, r.withoutTiming, r.correct)
            if let ts = r.probeTimesteps, !ts.isEmpty {
                do {
                    _ = try Replay.classify(r, strategy: FixedTimesteps(sampler: .explicit(ts)), range: 0..<schedule.numTrainTimesteps,
                                            timesteps: schedule.numTrainTimesteps, seed: 0, tau: 1)
                } catch { FuzzCheck.errorNames(error, "image \(r.index)") }
            }
        }
        _ = EvaluationSummary(records: records, classNames: (0..<10).map(String.init), settings: evalSettings, batchSize: 1,
                              threads: 1, scope: RunScope())
        if !records.isEmpty {
            _ = try? Calibration.fit(records.map { Calibration.Example(meanErrors: $0.comparableErrors, label: $0.label) })
        }
    } catch { FuzzCheck.errorNames(error, name) }
    do {
        let records = try RobustnessRun.parseResults(data, path: name).map(\.record)
        _ = RobustSummary(records: records, settings: robustSettings, limit: nil, threads: 1)
    } catch { FuzzCheck.errorNames(error, name) }
    return 0
}
