// The option strings that have a library parser: `--stages`, `--weighting`, `--lm`, the samplers
// (as settings.json records them, and as `--timesteps` is written), `--shard` and `--eps`. The
// first byte picks the option, the rest is its text. A parsed value must also work: stages and
// samplers are run on a synthetic scorer, weightings give finite positive weights, and every
// value's written form parses back to the same value. A refusal must name the setting.
import Diffusion
import DiffusionClassifier
import Foundation
import FuzzStrategies
import FuzzSupport
import NeuralNetworks
import Robustness

private let schedule = NoiseSchedule(SchedulerConfig())
private let T = schedule.numTrainTimesteps
private let classes = 10

private func run(_ sampler: TimestepSampler) {
    FuzzStrategy.run(FixedTimesteps(sampler: sampler), range: 0..<T, timesteps: T, classes: classes, probes: sampler.count,
                     refusalsName: [.nTimesteps, .timesteps])
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    guard let selector = data.first else { return 0 }
    let text = String(decoding: data.dropFirst(), as: UTF8.self)
    switch selector % 7 {
    case 0:
        do {
            let s = try StagedElimination(parsing: text)
            let again = try StagedElimination(parsing: s.text)
            FuzzCheck.require(again.stages == s.stages, "stages '\(s.text)' do not parse back")
            FuzzStrategy.run(s, range: 0..<T, timesteps: T, classes: classes, probes: s.stages.map(\.samples).max() ?? 0,
                             refusalsName: [.stages])
        } catch { FuzzCheck.errorNames(error, settings: [.stages]) }
    case 1:
        do {
            let w = try TimestepWeighting(parsing: text)
            let again = try TimestepWeighting(parsing: w.name)
            FuzzCheck.require(again == w, "weighting '\(w.name)' does not parse back")
            let weights = w.weights(schedule: schedule)
            FuzzCheck.require(weights.count == T && weights.allSatisfy { $0.isFinite && $0 >= 0 },
                              "weighting '\(w.name)' gave a weight that is not finite and >= 0")
        } catch { FuzzCheck.errorNames(error, settings: [.weighting]) }
    case 2:
        do {
            let lm = try LikelihoodMaximization(parsing: text)
            // Robustness settings store the description and parse it again to build the classifier.
            let again = try LikelihoodMaximization(parsing: lm.description)
            FuzzCheck.require(again.description == lm.description, "lm '\(lm.description)' parses back as '\(again.description)'")
        } catch { FuzzCheck.errorNames(error, settings: [.lm]) }
    case 3:
        // settings.json's sampler fields: the name, a count from the second line, a list from the third.
        let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let count = lines.count > 1 ? Int(lines[1]) : nil
        let list = lines.count > 2 ? lines[2].split(separator: ",").compactMap { Int($0) } : nil
        do {
            let sampler = try TimestepSampler(name: lines[0], count: count, list: list)
            let again = try TimestepSampler(name: sampler.name, count: sampler.countSetting, list: sampler.list)
            FuzzCheck.require(again == sampler, "sampler \(sampler) is written as one that reads back as \(again)")
            run(sampler)
        } catch { FuzzCheck.errorNames(error, settings: [.nTimesteps, .timesteps]) }
    case 4:
        do {
            let shard = try RunScope.parseShard(text)
            let indices = RunScope(limit: 1000, shard: shard).indices(datasetCount: 1000)
            FuzzCheck.require(indices.allSatisfy { $0 % shard.count == shard.index }, "shard \(text) picked an index of another shard")
        } catch { FuzzCheck.errorNames(error, settings: [.shard]) }
    case 5:
        do {
            let eps = try RobustnessSettings.parseEpsilon(text)
            FuzzCheck.require(eps >= 0 && eps <= 1, "eps \(text) gave \(eps)")
        } catch { FuzzCheck.errorNames(error, settings: [.epsilon]) }
    default:
        // `--timesteps TEXT` as a user writes it (a sampler kind drawing the count on the second
        // line, or a list t1,t2,...).
        let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let count = lines.count > 1 ? Int(lines[1]) ?? 1 : 1
        do {
            let sampler = try TimestepSampler(parsing: lines[0], count: count)
            if case .explicit(let list) = sampler {
                let again = try TimestepSampler(parsing: list.map(String.init).joined(separator: ","), count: count)
                FuzzCheck.require(again == sampler, "timesteps \(list) written as a list read back as \(again)")
            }
            run(sampler)
        } catch { FuzzCheck.errorNames(error, settings: [.timesteps]) }
    }
    return 0
}
