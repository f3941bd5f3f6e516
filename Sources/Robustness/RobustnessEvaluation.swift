import DiffusionClassifier
import TensorEngine

/// Robust accuracy under a list of attacks: an image counts as robust only if it is classified
/// correctly and every attack fails on it (AutoAttack's rule). Attacks run in order; an image
/// leaves the list at the first attack that succeeds, which is recorded.
///
/// Images go through in chunks of `batchSize` (1: strictly one image at a time). Attack `a` on
/// chunk `b` draws from `generator.derived(b).derived(a)`, so results do not depend on which
/// other images an earlier attack broke, only on the chunking. For a randomized classifier give
/// the attacks the same `evaluationRandomness` (their `EOTSettings`) as this evaluation.
public struct RobustnessEvaluation {
    public var attacks: [Attack]
    public var batchSize: Int
    /// The randomness the defence is scored with (clean accuracy and success checks).
    public var evaluationRandomness: UInt64

    public init(attacks: [Attack], batchSize: Int = 16, evaluationRandomness: UInt64 = 0) {
        self.attacks = attacks; self.batchSize = max(batchSize, 1)
        self.evaluationRandomness = evaluationRandomness
    }

    /// AutoAttack's standard list without FAB-T: APGD-CE (100 iterations), APGD-T (9 targets,
    /// 100 iterations), Square (5,000 queries, p_init 0.8; l_inf only, left out for l_2).
    public static func standard(budget: PerturbationBudget, iterations: Int = 100, squareQueries: Int = 5000,
                                evaluationRandomness: UInt64 = 0, batchSize: Int = 16) -> RobustnessEvaluation {
        let eot = EOTSettings(eotDraws: 1, evaluationRandomness: evaluationRandomness)
        var attacks: [Attack] = [APGDAttack(budget: budget, loss: .crossEntropy, iterations: iterations, eot: eot),
                                 APGDAttack(budget: budget, loss: .targetedDLR, iterations: iterations, targetCount: 9, eot: eot)]
        if budget.norm == .linf {
            attacks.append(SquareAttack(budget: budget, queries: squareQueries, evaluationRandomness: evaluationRandomness))
        }
        return RobustnessEvaluation(attacks: attacks, batchSize: batchSize, evaluationRandomness: evaluationRandomness)
    }

    /// AutoAttack's `rand` version for randomized defences: APGD-CE and APGD-DLR with EOT.
    public static func randomized(budget: PerturbationBudget, iterations: Int = 100, eotDraws: Int = 20,
                                  evaluationRandomness: UInt64 = 0, batchSize: Int = 16) -> RobustnessEvaluation {
        let eot = EOTSettings(eotDraws: eotDraws, evaluationRandomness: evaluationRandomness)
        return RobustnessEvaluation(attacks: [APGDAttack(budget: budget, loss: .crossEntropy, iterations: iterations, eot: eot),
                                              APGDAttack(budget: budget, loss: .dlr, iterations: iterations, eot: eot)],
                                    batchSize: batchSize, evaluationRandomness: evaluationRandomness)
    }

    public struct ImageOutcome: Equatable {
        public var index: Int
        public var label: Int
        public var cleanPrediction: Int
        public var cleanCorrect: Bool { cleanPrediction == label }
        /// Index into `attacks` of the first successful attack; nil if none succeeded (or the
        /// image was misclassified clean, when no attack runs).
        public var brokenBy: Int?
        public var robust: Bool { cleanCorrect && brokenBy == nil }
    }

    public struct AttackStatistics: Equatable {
        public var name: String
        public var attacked: Int
        public var broken: Int
        public var forwardCalls: Int
        public var backwardCalls: Int
        public var queries: Int
        /// Robust accuracy after this attack (and all before it).
        public var robustAccuracyAfter: Double
    }

    public struct Report {
        public var outcomes: [ImageOutcome]
        public var attacks: [AttackStatistics]
        /// Final adversarial images [N, C, H, W]: the breaking example where one was found,
        /// the clean image otherwise.
        public var adversarial: Tensor
        public var cleanAccuracy: Double {
            Double(outcomes.filter(\.cleanCorrect).count) / Double(max(outcomes.count, 1))
        }
        public var robustAccuracy: Double {
            Double(outcomes.filter(\.robust).count) / Double(max(outcomes.count, 1))
        }
    }

    public func run(on classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
                    generator: RandomGenerator) -> Report {
        let n = labels.count, k = classifier.classCount
        var adversarial = images.detached()
        var outcomes: [ImageOutcome] = []
        var stats = attacks.map { AttackStatistics(name: $0.name, attacked: 0, broken: 0, forwardCalls: 0,
                                                   backwardCalls: 0, queries: 0, robustAccuracyAfter: 0) }
        for (chunkIndex, start) in stride(from: 0, to: n, by: batchSize).enumerated() {
            let idx = Array(start..<min(start + batchSize, n))
            let cleanChunk = images.detached().gatherRows(idx)
            let z = Autograd.noGrad { classifier.logits(cleanChunk, randomness: evaluationRandomness).scalars }
            let pred = predictions(z, classCount: k)
            var chunkOutcomes = idx.enumerated().map { ImageOutcome(index: $1, label: labels[$1], cleanPrediction: pred[$0]) }
            let chunkGenerator = generator.derived(UInt64(chunkIndex))
            for (a, attack) in attacks.enumerated() {
                let remaining = chunkOutcomes.indices.filter { chunkOutcomes[$0].robust }
                if remaining.isEmpty { break }
                var g = chunkGenerator.derived(UInt64(a))
                let batch = cleanChunk.gatherRows(remaining)
                let r = attack.run(on: classifier, images: batch, labels: remaining.map { chunkOutcomes[$0].label }, generator: &g)
                stats[a].attacked += remaining.count
                stats[a].forwardCalls += r.forwardCalls
                stats[a].backwardCalls += r.backwardCalls
                stats[a].queries += r.queries
                let broken = remaining.indices.filter { r.success[$0] }
                for j in broken {
                    chunkOutcomes[remaining[j]].brokenBy = a
                    stats[a].broken += 1
                }
                if !broken.isEmpty {
                    adversarial = Autograd.noGrad {
                        adversarial.replacingRows(broken.map { idx[remaining[$0]] }, with: r.adversarial.detached().gatherRows(broken))
                    }
                }
            }
            outcomes += chunkOutcomes
        }
        let correct = outcomes.filter(\.cleanCorrect).count
        var broken = 0
        for a in stats.indices {
            broken += stats[a].broken
            stats[a].robustAccuracyAfter = Double(correct - broken) / Double(max(n, 1))
        }
        return Report(outcomes: outcomes, attacks: stats, adversarial: adversarial)
    }
}
