import DiffusionClassifier
import TensorEngine

/// Auto-PGD (Croce & Hein, ICML 2020), the APGD-CE / APGD-DLR / APGD-T of AutoAttack.
///
/// **Matches AutoAttack's `APGDAttack` / `APGDAttack_targeted` (l_inf and l_2):** random start in
/// the ball; step size 2 * eps; momentum 0.75 (none on the first step); checkpoints
/// w_0 = 0, w_1 = int(0.22 N), w_{j+1} = w_j + max(w_j - w_{j-1} - int(0.03 N), int(0.06 N));
/// at each checkpoint the step halves for an image when fewer than 75% of the steps since the
/// last checkpoint increased its loss, or when its step was not halved at the previous checkpoint
/// and its best loss has not grown since; a halved image restarts from its best-loss point with
/// the gradient there; restarts re-run only on images not yet fooled; APGD-T takes targets from
/// the clean logits' ranks 2...(targets + 1) and runs one APGD per target on the images still
/// robust; EOT averages gradients and losses over `eot.eotDraws` draws.
///
/// **Differs:** every random draw is from this package's Philox generator (not torch's); at the
/// first checkpoint the oscillation count compares step 0 with the loss at the start point,
/// where AutoAttack's code indexes `loss_steps[-1]` (a zero); success and the success point use
/// the logits at `eot.evaluationRandomness` (the first EOT draw) instead of the last draw; the
/// l_1 version and AutoAttack's `rand` version's defaults are not provided as presets.
public struct APGDAttack: Attack {
    public enum Loss: Sendable, Equatable { case crossEntropy, dlr, targetedDLR }
    public var budget: PerturbationBudget
    public var loss: Loss
    public var iterations: Int
    public var restarts: Int
    /// APGD-T: how many target classes (AutoAttack: 9).
    public var targetCount: Int
    public var eot: EOTSettings

    public init(budget: PerturbationBudget, loss: Loss = .crossEntropy, iterations: Int = 100,
                restarts: Int = 1, targetCount: Int = 9, eot: EOTSettings = EOTSettings()) {
        self.budget = budget; self.loss = loss; self.iterations = iterations
        self.restarts = restarts; self.targetCount = targetCount; self.eot = eot
    }

    public var name: String {
        switch loss { case .crossEntropy: "APGD-CE"; case .dlr: "APGD-DLR"; case .targetedDLR: "APGD-T" }
    }

    /// The iterations at which step sizes are checked (AutoAttack's integer schedule), ending
    /// before `iterations`. For 100: [22, 41, 57, 70, 80, 87, 93, 99].
    public static func checkpoints(iterations n: Int) -> [Int] {
        let first = max(Int(0.22 * Double(n)), 1)
        let minimum = max(Int(0.06 * Double(n)), 1)
        let decrease = max(Int(0.03 * Double(n)), 1)
        var out: [Int] = [], cur = first, length = first
        while cur <= n {
            out.append(cur)
            length = max(length - decrease, minimum)
            cur += length
        }
        return out
    }

    /// The halving rule at one checkpoint for one image. `lossesSinceCheck` holds the loss before
    /// the first step of the interval followed by the losses of its `k` steps.
    public static func shouldHalve(lossesSinceCheck l: [Float], halvedAtLastCheck: Bool,
                                   bestAtLastCheck: Float, best: Float, fraction: Float = 0.75) -> Bool {
        let k = l.count - 1
        var increases = 0
        for j in 1...k where l[j] > l[j - 1] { increases += 1 }
        let oscillation = Float(increases) <= Float(k) * fraction
        let noImprovement = !halvedAtLastCheck && bestAtLastCheck >= best
        return oscillation || noImprovement
    }

    public func run(on classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
                    generator: inout RandomGenerator) -> AttackResult {
        let imageShape = Array(images.shape.dropFirst())
        let oracle = ClassifierOracle(classifier, eot: eot, imageShape: imageShape)
        let n = labels.count
        let clean = images.detached()
        var adv = clean
        var success = [Bool](repeating: false, count: n)
        var targetsPerImage: [[Int]] = Array(repeating: [], count: n)
        if loss == .targetedDLR {
            let z = oracle.logits(clean)
            let k = classifier.classCount
            for i in 0..<n {
                let row = Array(z[(i * k)..<((i + 1) * k)])
                let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                targetsPerImage[i] = Array(order.dropFirst().prefix(min(targetCount, k - 1)))
                // AutoAttack ranks by the clean logits: target c is the c-th largest (2...).
            }
            for i in 0..<n where predictions(Array(z[(i * k)..<((i + 1) * k)]), classCount: k)[0] != labels[i] {
                success[i] = true
            }
        }
        let rounds: [AttackLoss?] = {
            switch loss {
            case .crossEntropy: return Array(repeating: .crossEntropy, count: restarts)
            case .dlr: return Array(repeating: .dlr, count: restarts)
            case .targetedDLR: return (0..<targetCount).flatMap { _ in Array(repeating: nil as AttackLoss?, count: restarts) }
            }
        }()
        for (roundIndex, roundLoss) in rounds.enumerated() {
            let active = (0..<n).filter { !success[$0] }
            if active.isEmpty { break }
            let l: AttackLoss
            if let roundLoss { l = roundLoss } else {
                let t = roundIndex / restarts
                let usable = active.filter { t < targetsPerImage[$0].count }
                if usable.isEmpty { continue }
                l = .dlrTargeted(targets: (0..<n).map { t < targetsPerImage[$0].count ? targetsPerImage[$0][t] : 0 })
                let r = singleRun(oracle: oracle, clean: clean.gatherRows(usable),
                                  labels: usable.map { labels[$0] }, loss: l.subset(usable), generator: &generator)
                let replaced = usable.indices.filter { r.success[$0] || !success[usable[$0]] }
                adv = Autograd.noGrad { adv.replacingRows(replaced.map { usable[$0] }, with: r.x.gatherRows(replaced)) }
                for j in replaced { success[usable[j]] = r.success[j] }
                continue
            }
            let r = singleRun(oracle: oracle, clean: clean.gatherRows(active),
                              labels: active.map { labels[$0] }, loss: l, generator: &generator)
            adv = Autograd.noGrad { adv.replacingRows(active, with: r.x) }
            for (j, i) in active.enumerated() { success[i] = r.success[j] }
        }
        return AttackResult(adversarial: adv, success: success,
                            forwardCalls: oracle.forwardCalls, backwardCalls: oracle.backwardCalls, queries: oracle.queries)
    }

    /// One APGD run on a batch; returns the first misclassified point found (success) or the
    /// best-loss point. Images are tensors throughout; per-image state that steers the run (step
    /// sizes, losses, which images improved) stays on the host and selects rows through masks.
    func singleRun(oracle: ClassifierOracle, clean: Tensor, labels: [Int], loss: AttackLoss,
                   generator: inout RandomGenerator) -> (x: Tensor, success: [Bool]) {
        let n = labels.count, k = oracle.k, rank = clean.rank
        let eps = budget.epsilon
        var x = randomStart(clean, budget: budget, generator: &generator)
        var (lossNow, grad, z) = oracle.lossAndGradient(x, labels: labels, loss: loss, generator: &generator)
        // Misclassified = argmax (first maximum, as torch.max) differs from the label.
        let pred0 = predictions(z, classCount: k)
        var fooled = (0..<n).map { pred0[$0] != labels[$0] }
        var xBestAdv = x
        var xBest = x, gradBest = grad, lossBest = lossNow
        var step = [Float](repeating: 2 * eps, count: n)
        var xOld = x
        let checks = Set(APGDAttack.checkpoints(iterations: iterations))
        var history: [[Float]] = [lossNow]   // losses since the last checkpoint (start value first)
        var bestAtLastCheck = lossBest
        var halvedAtLastCheck = [Bool](repeating: true, count: n)
        for it in 0..<iterations {
            let a: Float = it > 0 ? 0.75 : 1
            let next: Tensor = Autograd.noGrad {
                let steps = imageValues(step, rank: rank)
                var z1: Tensor
                switch budget.norm {
                case .linf:
                    z1 = x + steps * grad.sign()
                case .l2:
                    z1 = x + steps * grad / (PerturbationBudget.rowNorms(grad) + 1e-12)
                }
                z1 = budget.project(z1, clean: clean)
                z1 = x + (z1 - x) * a + (x - xOld) * (1 - a)
                return budget.project(z1, clean: clean)
            }
            xOld = x
            x = next
            (lossNow, grad, z) = oracle.lossAndGradient(x, labels: labels, loss: loss, generator: &generator)
            let pred = predictions(z, classCount: k)
            let misclassified = (0..<n).map { pred[$0] != labels[$0] }
            for img in 0..<n where misclassified[img] { fooled[img] = true }
            let improved = (0..<n).map { lossNow[$0] > lossBest[$0] }
            for img in 0..<n where improved[img] { lossBest[img] = lossNow[img] }
            Autograd.noGrad {
                if misclassified.contains(true) { xBestAdv = Tensor.where(imageMask(misclassified, rank: rank), x, xBestAdv) }
                if improved.contains(true) {
                    let mask = imageMask(improved, rank: rank)
                    xBest = Tensor.where(mask, x, xBest)
                    gradBest = Tensor.where(mask, grad, gradBest)
                }
            }
            history.append(lossNow)
            let done = it + 1
            if checks.contains(done) {
                var halved = [Bool](repeating: false, count: n)
                for img in 0..<n {
                    let halve = APGDAttack.shouldHalve(lossesSinceCheck: history.map { $0[img] },
                                                       halvedAtLastCheck: halvedAtLastCheck[img],
                                                       bestAtLastCheck: bestAtLastCheck[img], best: lossBest[img])
                    halvedAtLastCheck[img] = halve
                    if halve {
                        step[img] /= 2
                        halved[img] = true
                    }
                }
                if halved.contains(true) {
                    Autograd.noGrad {
                        let mask = imageMask(halved, rank: rank)
                        x = Tensor.where(mask, xBest, x)
                        grad = Tensor.where(mask, gradBest, grad)
                    }
                }
                bestAtLastCheck = lossBest
                history = [history.last!]
            }
        }
        let out = Autograd.noGrad { Tensor.where(imageMask(fooled, rank: rank), xBestAdv, xBest) }
        return (out, fooled)
    }
}

/// Projected gradient descent (Madry et al. 2018) with a random start and a fixed step: l_inf
/// steps along sign(grad), l_2 along grad / ||grad||_2, each followed by projection onto the ball
/// and [0, 1]. Returns the first misclassified iterate per image, else the last. With EOT the
/// gradient is the mean over draws. Not AutoAttack (no step schedule, no momentum).
public struct PGDAttack: Attack {
    public var budget: PerturbationBudget
    public var iterations: Int
    /// Step size; nil means 2.5 * eps / iterations (Madry et al.'s rule of thumb).
    public var stepSize: Float?
    public var loss: AttackLoss
    public var eot: EOTSettings

    public init(budget: PerturbationBudget, iterations: Int = 40, stepSize: Float? = nil,
                loss: AttackLoss = .crossEntropy, eot: EOTSettings = EOTSettings()) {
        self.budget = budget; self.iterations = iterations; self.stepSize = stepSize
        self.loss = loss; self.eot = eot
    }

    public var name: String { "PGD" }

    public func run(on classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
                    generator: inout RandomGenerator) -> AttackResult {
        precondition(loss == .crossEntropy || loss == .dlr, "PGD: untargeted losses only")
        let oracle = ClassifierOracle(classifier, eot: eot, imageShape: Array(images.shape.dropFirst()))
        let n = labels.count, k = oracle.k, rank = images.rank
        let clean = images.detached()
        let alpha = stepSize ?? 2.5 * budget.epsilon / Float(max(iterations, 1))
        var x = randomStart(clean, budget: budget, generator: &generator)
        var result = x
        var success = [Bool](repeating: false, count: n)
        for it in 0...iterations {
            let active = (0..<n).filter { !success[$0] }
            if active.isEmpty { break }
            let xa = x.gatherRows(active)
            let la = active.map { labels[$0] }
            let (_, g, z) = oracle.lossAndGradient(xa, labels: la, loss: loss, generator: &generator)
            let pred = predictions(z, classCount: k)
            // Images misclassified now keep this iterate as their result and leave; at the end,
            // every remaining image keeps its last iterate.
            let hit = active.indices.map { pred[$0] != labels[active[$0]] }
            let finished = it == iterations ? Array(active.indices) : active.indices.filter { hit[$0] }
            for j in active.indices where hit[j] { success[active[j]] = true }
            Autograd.noGrad {
                if !finished.isEmpty {
                    result = result.replacingRows(finished.map { active[$0] }, with: xa.gatherRows(finished))
                }
            }
            if it == iterations { break }
            let xn: Tensor = Autograd.noGrad {
                let stepped: Tensor
                switch budget.norm {
                case .linf: stepped = xa + alpha * g.sign()
                case .l2: stepped = xa + g * alpha / (PerturbationBudget.rowNorms(g) + 1e-12)
                }
                let projected = budget.project(stepped, clean: clean.gatherRows(active))
                return Tensor.where(imageMask(hit, rank: rank), xa, projected)
            }
            x = Autograd.noGrad { x.replacingRows(active, with: xn) }
        }
        return AttackResult(adversarial: result, success: success,
                            forwardCalls: oracle.forwardCalls, backwardCalls: oracle.backwardCalls, queries: oracle.queries)
    }
}
