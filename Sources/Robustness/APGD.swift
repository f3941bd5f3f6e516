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
        let size = oracle.imageSize, n = labels.count
        let clean = images.detached().scalars
        var adv = clean
        var success = [Bool](repeating: false, count: n)
        var targetsPerImage: [[Int]] = Array(repeating: [], count: n)
        if loss == .targetedDLR {
            let z = oracle.logits(clean, count: n)
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
                let r = singleRun(oracle: oracle, clean: clean.rows(usable, size: size),
                                  labels: usable.map { labels[$0] }, loss: l.subset(usable), generator: &generator)
                for (j, i) in usable.enumerated() where r.success[j] || !success[i] {
                    adv.replaceSubrange((i * size)..<((i + 1) * size), with: r.x[(j * size)..<((j + 1) * size)])
                    success[i] = r.success[j]
                }
                continue
            }
            let r = singleRun(oracle: oracle, clean: clean.rows(active, size: size),
                              labels: active.map { labels[$0] }, loss: l, generator: &generator)
            for (j, i) in active.enumerated() {
                adv.replaceSubrange((i * size)..<((i + 1) * size), with: r.x[(j * size)..<((j + 1) * size)])
                success[i] = r.success[j]
            }
        }
        return AttackResult(adversarial: Tensor(shape: images.shape, adv), success: success,
                            forwardCalls: oracle.forwardCalls, backwardCalls: oracle.backwardCalls, queries: oracle.queries)
    }

    /// One APGD run on a batch; returns the first misclassified point found (success) or the
    /// best-loss point.
    func singleRun(oracle: ClassifierOracle, clean: [Float], labels: [Int], loss: AttackLoss,
                   generator: inout RandomGenerator) -> (x: [Float], success: [Bool]) {
        let size = oracle.imageSize, n = labels.count, k = oracle.k
        let eps = budget.epsilon
        var x = randomStart(clean, imageSize: size, budget: budget, generator: &generator)
        var (lossNow, grad, z) = oracle.lossAndGradient(x, count: n, labels: labels, loss: loss, generator: &generator)
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
            var next = x
            for img in 0..<n {
                let r = (img * size)..<((img + 1) * size)
                var z1 = x
                switch budget.norm {
                case .linf:
                    for i in r { z1[i] = x[i] + step[img] * (grad[i] > 0 ? 1 : (grad[i] < 0 ? -1 : 0)) }
                case .l2:
                    var g2: Float = 0
                    for i in r { g2 += grad[i] * grad[i] }
                    let gn = g2.squareRoot() + 1e-12
                    for i in r { z1[i] = x[i] + step[img] * grad[i] / gn }
                }
                budget.project(&z1, clean: clean, range: r)
                for i in r { z1[i] = x[i] + (z1[i] - x[i]) * a + (x[i] - xOld[i]) * (1 - a) }
                budget.project(&z1, clean: clean, range: r)
                for i in r { next[i] = z1[i] }
            }
            xOld = x
            x = next
            (lossNow, grad, z) = oracle.lossAndGradient(x, count: n, labels: labels, loss: loss, generator: &generator)
            let pred = predictions(z, classCount: k)
            for img in 0..<n where pred[img] != labels[img] {
                fooled[img] = true
                xBestAdv.replaceSubrange((img * size)..<((img + 1) * size), with: x[(img * size)..<((img + 1) * size)])
            }
            for img in 0..<n where lossNow[img] > lossBest[img] {
                lossBest[img] = lossNow[img]
                xBest.replaceSubrange((img * size)..<((img + 1) * size), with: x[(img * size)..<((img + 1) * size)])
                gradBest.replaceSubrange((img * size)..<((img + 1) * size), with: grad[(img * size)..<((img + 1) * size)])
            }
            history.append(lossNow)
            let done = it + 1
            if checks.contains(done) {
                for img in 0..<n {
                    let halve = APGDAttack.shouldHalve(lossesSinceCheck: history.map { $0[img] },
                                                       halvedAtLastCheck: halvedAtLastCheck[img],
                                                       bestAtLastCheck: bestAtLastCheck[img], best: lossBest[img])
                    halvedAtLastCheck[img] = halve
                    if halve {
                        step[img] /= 2
                        let r = (img * size)..<((img + 1) * size)
                        x.replaceSubrange(r, with: xBest[r])
                        grad.replaceSubrange(r, with: gradBest[r])
                    }
                }
                bestAtLastCheck = lossBest
                history = [history.last!]
            }
        }
        var out = xBest
        for img in 0..<n where fooled[img] {
            out.replaceSubrange((img * size)..<((img + 1) * size), with: xBestAdv[(img * size)..<((img + 1) * size)])
        }
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
        let size = oracle.imageSize, n = labels.count, k = oracle.k
        let clean = images.detached().scalars
        let alpha = stepSize ?? 2.5 * budget.epsilon / Float(max(iterations, 1))
        var x = randomStart(clean, imageSize: size, budget: budget, generator: &generator)
        var result = x
        var success = [Bool](repeating: false, count: n)
        for it in 0...iterations {
            let active = (0..<n).filter { !success[$0] }
            if active.isEmpty { break }
            let xa = x.rows(active, size: size)
            let la = active.map { labels[$0] }
            let (_, g, z) = oracle.lossAndGradient(xa, count: active.count, labels: la, loss: loss, generator: &generator)
            let pred = predictions(z, classCount: k)
            var xn = xa
            for (j, img) in active.enumerated() {
                let r = (j * size)..<((j + 1) * size)
                if pred[j] != labels[img] {
                    success[img] = true
                    result.replaceSubrange((img * size)..<((img + 1) * size), with: xa[r])
                    continue
                }
                if it == iterations { result.replaceSubrange((img * size)..<((img + 1) * size), with: xa[r]); continue }
                switch budget.norm {
                case .linf: for i in r { xn[i] += alpha * (g[i] > 0 ? 1 : (g[i] < 0 ? -1 : 0)) }
                case .l2:
                    let gn = r.reduce(Float(0)) { $0 + g[$1] * g[$1] }.squareRoot() + 1e-12
                    for i in r { xn[i] += alpha * g[i] / gn }
                }
                let c = clean.rows([img], size: size)
                var one = Array(xn[r])
                budget.project(&one, clean: c, range: 0..<size)
                xn.replaceSubrange(r, with: one)
            }
            x.setRows(active, size: size, from: xn)
        }
        return AttackResult(adversarial: Tensor(shape: images.shape, result), success: success,
                            forwardCalls: oracle.forwardCalls, backwardCalls: oracle.backwardCalls, queries: oracle.queries)
    }
}
