// A run folder's settings.json, read as `eval`/`replay`/`calibrate` and `robust` read it: decoded,
// compared with itself (the resume check), re-encoded (must read back equal), and for an
// evaluation the strategy, sampler and classifier options it describes.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzSupport
import Robustness

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunSettings(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    if let s = try? EvaluationSettings.decode(data) {
        do {
            let differences = try s.differences(from: s)
            FuzzCheck.require(differences.isEmpty, "settings differ from themselves: \(differences)")
            let again = try EvaluationSettings.decode(try s.encoded())
            FuzzCheck.require(again == s, "settings do not read back equal after writing")
        } catch {
            FuzzCheck.require(false, "decoded settings cannot be written and read back: \(error)")
        }
        _ = try? s.strategy()
        _ = try? s.sampler()
        _ = try? s.classifierOptions(batchSize: 1)
    }
    if let s = try? RobustnessSettings.decode(data) {
        do {
            let differences = try s.differences(from: s)
            FuzzCheck.require(differences.isEmpty, "robustness settings differ from themselves: \(differences)")
            let again = try RobustnessSettings.decode(try s.encoded())
            FuzzCheck.require(again == s, "robustness settings do not read back equal after writing")
        } catch {
            FuzzCheck.require(false, "decoded robustness settings cannot be written and read back: \(error)")
        }
    }
    return 0
}
