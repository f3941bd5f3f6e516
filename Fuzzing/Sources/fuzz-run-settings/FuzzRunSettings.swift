// A run folder's settings.json, read as `eval`/`replay`/`calibrate` and `robust` read it: decoded,
// compared with itself (the resume check), re-encoded (must read back equal, and encode to the same
// bytes), and for an evaluation the method it describes run on a synthetic scorer (its refusal
// must name a setting) and the classifier options it gives.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzStrategies
import FuzzSupport
import NeuralNetworks
import Robustness

private let methodSettings: [Setting] = [.stages, .timesteps, .nTimesteps, .maxScores, .minScores, .pValue, .testEvery, .maxProbes, .gap]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunSettings(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    if let s = try? EvaluationSettings.decode(data) {
        do {
            let differences = try s.differences(from: s)
            FuzzCheck.require(differences.isEmpty, "settings differ from themselves: \(differences)")
            let written = try s.encoded()
            let again = try EvaluationSettings.decode(written)
            FuzzCheck.require(again == s, "settings do not read back equal after writing")
            let rewritten = try again.encoded()
            FuzzCheck.require(rewritten == written, "settings written twice give different bytes")
        } catch {
            FuzzCheck.require(false, "decoded settings cannot be written and read back: \(error)")
        }
        let m = s.method
        _ = (m.summary, m.name, s.classifierOptions(batchSize: 1))
        let probes = min(m.sampler.count, FuzzStrategy.maxProbes + 1)
        let rounds: Int
        switch m {
        case .ttest(let t): rounds = min(probes, t.maxProbes ?? probes) / max(t.testEvery, 1)
        case .leaderGap(let g): rounds = min(probes, g.maxProbes ?? probes) / max(g.testEvery, 1)
        case .fixed, .staged: rounds = 1
        }
        FuzzStrategy.run(m.strategy, range: s.timestepRange, timesteps: s.numTrainTimesteps, classes: s.classes, probes: probes,
                         rounds: rounds, refusalsName: methodSettings)
    }
    if let s = try? RobustnessSettings.decode(data) {
        do {
            let differences = try s.differences(from: s)
            FuzzCheck.require(differences.isEmpty, "robustness settings differ from themselves: \(differences)")
            let written = try s.encoded()
            let again = try RobustnessSettings.decode(written)
            FuzzCheck.require(again == s, "robustness settings do not read back equal after writing")
            let rewritten = try again.encoded()
            FuzzCheck.require(rewritten == written, "robustness settings written twice give different bytes")
        } catch {
            FuzzCheck.require(false, "decoded robustness settings cannot be written and read back: \(error)")
        }
    }
    return 0
}
