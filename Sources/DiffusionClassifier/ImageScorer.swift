import Diffusion
import TensorEngine

/// One (timestep, noise draw) pair at which classes are scored. Every class scored on a probe
/// sees the same x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps_k (paired samples).
public struct Probe: Equatable, Sendable {
    public let timestep: Int
    /// k: eps_k of the image's `NoiseSource`. By default probes are numbered 0, 1, 2... as they
    /// are created (the public code's `noise_idxs`); with `ImageScorer.noiseByTimestep`, k = t.
    public let noiseIndex: Int
}

/// The per-probe errors of one image's candidate classes, and the bookkeeping every strategy
/// reads: probes, which candidate was scored where, calls. Subclasses say how an error is
/// obtained: `ImageScorer` runs the model, `RecordedScorer` looks errors up in a recorded run.
/// Strategies (`ClassificationStrategy`) only see this class, so a recorded run replays any of them.
open class ProbeScorer {
    public let candidateCount: Int
    /// w(t) for t = 0..<T (see `TimestepWeighting`); `weightedErrors` applies it.
    public let weights: [Double]
    /// When true, the probe at timestep t uses eps_t (draw number t) instead of the next draw in
    /// creation order. Then the error of (class, t) does not depend on which strategy asked for
    /// it or in what order, so any strategy restricted to a grid gives exactly what a replay of
    /// that grid's recorded errors gives (`RecordedScorer`), and different strategies are paired
    /// on the same noise. Set before adding probes.
    public var noiseByTimestep = false

    public private(set) var probes: [Probe] = []
    /// Per candidate: the probes it was scored on, in order, and the raw errors there.
    public private(set) var probeIDs: [[Int]]
    public private(set) var errors: [[Double]]
    /// U-Net forward passes (one per (class, probe) pair scored).
    public private(set) var calls = 0

    public init(candidateCount: Int, weights: [Double]) {
        precondition(candidateCount >= 1, "ProbeScorer: no candidates")
        self.candidateCount = candidateCount
        self.weights = weights
        probeIDs = Array(repeating: [], count: candidateCount)
        errors = Array(repeating: [], count: candidateCount)
    }

    /// Creates one new probe per timestep (noise index: the probe's number, or t with
    /// `noiseByTimestep`); returns their ids.
    public func addProbes<S: Sequence>(timesteps: S) -> [Int] where S.Element == Int {
        timesteps.map { t in
            precondition(t >= 0 && t < weights.count, "ProbeScorer: timestep \(t) outside 0..<\(weights.count)")
            probes.append(Probe(timestep: t, noiseIndex: noiseByTimestep ? t : probes.count))
            return probes.count - 1
        }
    }

    /// Scores `candidates` on every probe in `ids` (none of which they have seen). Subclasses
    /// compute the errors and hand each to `record`.
    open func score(candidates: [Int], probes ids: [Int]) throws {
        fatalError("ProbeScorer.score: subclasses provide it")
    }

    /// Checks that none of `candidates` has seen a probe of `ids` (a strategy bug otherwise).
    public func checkUnseen(candidates: [Int], probes ids: [Int]) {
        for c in candidates { precondition(Set(probeIDs[c]).isDisjoint(with: ids), "ProbeScorer: class \(c) already scored on a probe") }
    }

    /// Stores the raw error of candidate `c` on probe `id` and counts one forward pass.
    public func record(candidate c: Int, probe id: Int, error: Double) {
        probeIDs[c].append(id)
        errors[c].append(error)
        calls += 1
    }

    /// w(t) * error on each probe candidate `c` has seen, in order.
    public func weightedErrors(_ c: Int) -> [Double] {
        zip(probeIDs[c], errors[c]).map { weights[probes[$0].timestep] * $1 }
    }

    /// Per candidate, per probe (in creation order): the weighted error, nil where not scored.
    public func errorTable() -> [[Double?]] {
        (0..<candidateCount).map { c in
            var row = [Double?](repeating: nil, count: probes.count)
            for (id, e) in zip(probeIDs[c], weightedErrors(c)) { row[id] = e }
            return row
        }
    }

    /// The mean weighted error over every probe `c` has seen (nil when none).
    public func meanError(_ c: Int) -> Double? {
        let w = weightedErrors(c)
        return w.isEmpty ? nil : w.reduce(0, +) / Double(w.count)
    }

    /// Weighted error of `a` minus that of `b` on each probe both have seen, in `a`'s order.
    public func pairedDifferences(_ a: Int, _ b: Int) -> [Double] {
        // The common case (survivors of a sequential rule, classes of one stage): the same probes
        // in the same order, no lookup needed. At 1,000 classes the rules ask this of every
        // survivor after every probe.
        if probeIDs[a] == probeIDs[b] { return zip(weightedErrors(a), weightedErrors(b)).map { $0 - $1 } }
        var byProbe: [Int: Double] = [:]
        for (id, e) in zip(probeIDs[b], weightedErrors(b)) { byProbe[id] = e }
        return zip(probeIDs[a], weightedErrors(a)).compactMap { id, e in byProbe[id].map { e - $0 } }
    }

    /// Per candidate: its mean error on the probes `reference` saw, estimated as the reference's
    /// mean there plus the candidate's mean paired difference to it on the probes they share
    /// (nil for a candidate sharing none). For a candidate scored on all of the reference's probes
    /// this is its plain mean; for one pruned early it removes the bias of comparing means over
    /// different timesteps (a class dropped after the coarse first stage is compared on those
    /// probes only, where its error and the reference's are paired).
    public func pairedMeanErrors(reference: Int) -> [Double?] {
        guard let refMean = meanError(reference) else { return (0..<candidateCount).map(meanError) }
        return (0..<candidateCount).map { c in
            if c == reference { return refMean }
            let d = pairedDifferences(c, reference)
            return d.isEmpty ? nil : refMean + d.reduce(0, +) / Double(d.count)
        }
    }
}

/// The errors of one image: per candidate class, per probe, the eps-space error
/// `loss(eps_hat(x_t, t, c), eps)`, with eps_hat converted from the model's prediction type
/// (`NoiseSchedule.epsilon(fromOutput:)`), so v- and x0-prediction models are scored like
/// eps-prediction ones.
///
/// Forward passes run under `Autograd.noGrad`, batched over (class, probe) pairs in class-major
/// order (as the public code orders them), `batchSize` pairs per call of the model; with a
/// `batcher`, pooled with other images' pairs into larger calls (same results). `calls`
/// counts U-Net forward passes per image: one per (class, probe) pair, whatever the batching.
public final class ImageScorer: ProbeScorer {
    public let model: ConditionalNoisePredictor
    public let schedule: NoiseSchedule
    public let x0: Tensor
    /// The model's condition (class id) for each candidate 0..<K.
    public let conditions: [Int]
    public let loss: ErrorLoss
    public let batchSize: Int
    public let noiseSource: NoiseSource
    /// Independent noise (for studying the paired design): when set, candidate c draws its own
    /// eps on every probe, draw k of `classNoise[c]` for the probe with noise index k, instead
    /// of the shared `noiseSource` draw. nil (the classifier's default): every class shares eps.
    public var classNoise: [NoiseSource]?
    /// Errors this image already has from an earlier run on the same noise (`eval --reuse`):
    /// the raw error of (candidate, timestep), or nil to compute it. Used only with
    /// `noiseByTimestep` and shared noise, where the error of (class, t) does not depend on the
    /// strategy; a looked-up error is recorded as if computed (it counts in `calls`, the passes
    /// the strategy spends) but runs no model (`modelCalls`).
    public var knownErrors: ((_ candidate: Int, _ timestep: Int) -> Double?)?
    /// U-Net forward passes actually run (`calls` minus the errors taken from `knownErrors`).
    public private(set) var modelCalls = 0
    /// Pools this image's items with those of other images in flight (`CrossImageBatcher`;
    /// results do not change); nil: the scorer calls the model itself.
    public var batcher: CrossImageBatcher?
    private var noiseCache: [Int: Tensor] = [:]

    public init(model: ConditionalNoisePredictor, schedule: NoiseSchedule, x0: Tensor, conditions: [Int], loss: ErrorLoss,
                weights: [Double], batchSize: Int, noise: NoiseSource) {
        precondition(x0.rank == 4 && x0.shape[0] == 1, "ImageScorer: x0 must be [1, C, H, W], got \(x0.shape)")
        precondition(batchSize >= 1 && !conditions.isEmpty && weights.count == schedule.numTrainTimesteps)
        self.model = model
        self.schedule = schedule
        self.x0 = x0
        self.conditions = conditions
        self.loss = loss
        self.batchSize = batchSize
        self.noiseSource = noise
        super.init(candidateCount: conditions.count, weights: weights)
    }

    /// eps_k for probe `id`.
    public func noise(probe id: Int) throws -> Tensor {
        let k = probes[id].noiseIndex
        if let eps = noiseCache[k] { return eps }
        let eps = try noiseSource.noise(k)
        noiseCache[k] = eps
        return eps
    }

    /// x_t of the given probes, [P, C, H, W] (what every class sees there).
    public func noisySamples(probes ids: [Int]) throws -> (xt: Tensor, eps: Tensor) {
        let eps = Tensor.concat(try ids.map { try noise(probe: $0) }, axis: 0)
        var shape = x0.shape
        shape[0] = ids.count
        let xt = Autograd.noGrad { schedule.addNoise(x0.expanded(to: shape), noise: eps, timesteps: ids.map { probes[$0].timestep }) }
        return (xt, eps)
    }

    /// Scores `candidates` on every probe in `ids` (none of which they have seen).
    public override func score(candidates: [Int], probes ids: [Int]) throws {
        guard !candidates.isEmpty, !ids.isEmpty else { return }
        checkUnseen(candidates: candidates, probes: ids)
        // (candidate, row of ids) in class-major order; errors are recorded in this order whether
        // looked up or computed, so sums and means do not depend on which were reused.
        let pairs = candidates.flatMap { c in ids.indices.map { (c, $0) } }
        var values = [Double?](repeating: nil, count: pairs.count)
        if let knownErrors, noiseByTimestep, classNoise == nil {
            for (k, (c, row)) in pairs.enumerated() { values[k] = knownErrors(c, probes[ids[row]].timestep) }
        }
        let todo = pairs.indices.filter { values[$0] == nil }
        if !todo.isEmpty {
            // The noisy samples each candidate sees: shared by all (paired), or its own (independent).
            var samples: [Int: (xt: Tensor, eps: Tensor)] = [:]
            let needed = Set(todo.map { pairs[$0].0 })
            if let classNoise {
                precondition(classNoise.count == conditions.count, "ImageScorer: classNoise needs one source per candidate")
                for c in candidates where needed.contains(c) { samples[c] = try noisySamples(probes: ids, source: classNoise[c]) }
            } else {
                let shared = try noisySamples(probes: ids)
                for c in needed { samples[c] = shared }
            }
            let items = todo.map { k -> ScoringItem in
                let (c, row) = pairs[k]
                return ScoringItem(xt: samples[c]!.xt, eps: samples[c]!.eps, row: row, timestep: probes[ids[row]].timestep,
                                   condition: conditions[c])
            }
            let errors = batcher?.errors(of: items)
                ?? ScoringItem.errors(of: items, model: model, schedule: schedule, loss: loss, batchSize: batchSize)
            for (k, e) in zip(todo, errors) { values[k] = e }
            modelCalls += items.count
        }
        for ((c, row), e) in zip(pairs, values) { record(candidate: c, probe: ids[row], error: e!) }
    }

    /// x_t of the given probes with eps from `source` (draw k for noise index k), [P, C, H, W].
    private func noisySamples(probes ids: [Int], source: NoiseSource) throws -> (xt: Tensor, eps: Tensor) {
        let eps = Tensor.concat(try ids.map { try source.noise(probes[$0].noiseIndex) }, axis: 0)
        var shape = x0.shape
        shape[0] = ids.count
        let xt = Autograd.noGrad { schedule.addNoise(x0.expanded(to: shape), noise: eps, timesteps: ids.map { probes[$0].timestep }) }
        return (xt, eps)
    }
}
