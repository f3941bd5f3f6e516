// The option strings that have a library parser: `--stages`, `--weighting`, `--lm`, the
// `--timesteps` samplers (as settings.json names them), `--shard` and `--eps`. The first byte picks
// the option, the rest is its text. A parsed value must also work: stages and samplers are run on a
// synthetic scorer, weightings give finite weights or a named refusal, and every value's written
// form parses back to the same value.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzSupport
import Robustness
import TensorEngine

private let schedule = NoiseSchedule(SchedulerConfig())
private let classes = 10

/// Errors that depend only on (class, timestep), like a recorded run's.
private final class SyntheticScorer: ProbeScorer {
    override func score(candidates: [Int], probes ids: [Int]) throws {
        checkUnseen(candidates: candidates, probes: ids)
        for c in candidates {
            for id in ids {
                let t = probes[id].timestep
                record(candidate: c, probe: id, error: Double((c * 7919 + t * 104729) % 1000) / 1000)
            }
        }
    }
}

private func classify(_ strategy: ClassificationStrategy, range: Range<Int>) throws {
    try strategy.validate(range: range, classes: classes)
    let scorer = SyntheticScorer(candidateCount: classes, weights: [Double](repeating: 1, count: schedule.timesteps))
    let c = try Classifier.run(strategy, on: scorer, range: range, seed: 1, imageIndex: 0, tau: 1)
    FuzzCheck.require((0..<classes).contains(c.prediction), "prediction \(c.prediction) outside the classes")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    guard let selector = data.first else { return 0 }
    let text = String(decoding: data.dropFirst(), as: UTF8.self)
    switch selector % 6 {
    case 0:
        do {
            let s = try StagedElimination(parsing: text)
            let again = try StagedElimination(parsing: s.text)
            FuzzCheck.require(again.stages == s.stages, "stages '\(s.text)' do not parse back")
            do { try classify(s, range: 0..<schedule.timesteps) } catch { FuzzCheck.errorNames(error, "--stages") }
        } catch { FuzzCheck.errorNames(error, "--stages") }
    case 1:
        do {
            let w = try TimestepWeighting(parsing: text)
            let again = try TimestepWeighting(parsing: w.name)
            FuzzCheck.require(again == w, "weighting '\(w.name)' does not parse back")
            _ = w.weights(schedule: schedule)
        } catch { FuzzCheck.errorNames(error, "--weighting") }
    case 2:
        do {
            let lm = try LikelihoodMaximization(parsing: text)
            // Robustness settings store the description and parse it again to build the classifier.
            let again = try LikelihoodMaximization(parsing: lm.description)
            FuzzCheck.require(again.description == lm.description, "--lm '\(lm.description)' parses back as '\(again.description)'")
        } catch { FuzzCheck.errorNames(error, "--lm") }
    case 3:
        // settings.json's sampler fields: the name, a count from the first line, a list from the rest.
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        var settings = EvaluationSettings(model: "m", dataset: "d", split: "test", classes: classes, schedule: schedule,
                                          method: .fixed, timesteps: lines[0])
        if lines.count > 1 { settings.nTimesteps = Int(lines[1]) }
        if lines.count > 2 { settings.timestepList = lines[2].split(separator: ",").compactMap { Int($0) } }
        do {
            let sampler = try settings.sampler()
            guard sampler.count <= 100_000 else { return 0 }  // the CLI's counts stop far below
            do { try classify(FixedTimesteps(sampler: sampler), range: settings.range) } catch { FuzzCheck.errorNames(error, "timesteps") }
        } catch { FuzzCheck.errorNames(error, "timesteps") }
    case 4:
        do {
            let shard = try RunScope.parseShard(text)
            let indices = RunScope(limit: 1000, shard: shard).indices(datasetCount: 1000)
            FuzzCheck.require(indices.allSatisfy { $0 % shard.count == shard.index }, "--shard \(text) picked an index of another shard")
        } catch { FuzzCheck.errorNames(error, "--shard") }
    default:
        do {
            let eps = try RobustnessSettings.parseEpsilon(text)
            FuzzCheck.require(eps >= 0 && eps <= 1, "--eps \(text) gave \(eps)")
        } catch { FuzzCheck.errorNames(error, "--eps") }
    }
    return 0
}
