import DiffusionClassifier
import TensorEngine

/// The threat model: an l_inf or l_2 ball of radius `epsilon` around the clean image, intersected
/// with the pixel box [0, 1].
public struct PerturbationBudget: Sendable, Equatable, CustomStringConvertible {
    public enum Norm: String, Sendable { case linf, l2 }
    public var norm: Norm
    public var epsilon: Float
    public init(_ norm: Norm, epsilon: Float) { self.norm = norm; self.epsilon = epsilon }
    public static func linf(_ epsilon: Float) -> PerturbationBudget { .init(.linf, epsilon: epsilon) }
    public static func l2(_ epsilon: Float) -> PerturbationBudget { .init(.l2, epsilon: epsilon) }
    public var description: String { "\(norm.rawValue) \(epsilon)" }

    /// Projects `x` (one image, flat) onto the ball around `clean` and then onto [0, 1], in place.
    /// For l_inf the result lies in both sets exactly; for l_2 the box clamp follows the ball
    /// projection (as AutoAttack does), which can only shrink the l_2 distance.
    func project(_ x: inout [Float], clean: [Float], range: Range<Int>) {
        switch norm {
        case .linf:
            for i in range { x[i] = min(max(min(max(x[i], clean[i] - epsilon), clean[i] + epsilon), 0), 1) }
        case .l2:
            var s: Float = 0
            for i in range { let d = x[i] - clean[i]; s += d * d }
            let n = s.squareRoot()
            let scale = n > epsilon ? epsilon / (n + 1e-12) : 1
            for i in range { x[i] = min(max(clean[i] + (x[i] - clean[i]) * scale, 0), 1) }
        }
    }

    /// Distance of `x` from `clean` in this norm, per image.
    public func distances(_ x: [Float], clean: [Float], imageSize: Int) -> [Float] {
        stride(from: 0, to: x.count, by: imageSize).map { start in
            var m: Float = 0
            for i in start..<(start + imageSize) {
                let d = Swift.abs(x[i] - clean[i])
                if norm == .linf { m = Swift.max(m, d) } else { m += d * d }
            }
            return norm == .linf ? m : m.squareRoot()
        }
    }
}

/// What an attack returns for a batch.
public struct AttackResult {
    /// Adversarial images [N, C, H, W] in [0, 1], inside the budget. Where the attack failed it is
    /// the point the attack ended on (APGD: the highest-loss point).
    public var adversarial: Tensor
    /// Whether the classifier (at the evaluation randomness) misclassifies `adversarial[i]`.
    public var success: [Bool]
    /// Calls to `classifier.logits` (each on a batch of the still-active images).
    public var forwardCalls: Int
    /// Backward passes through the classifier (each on a batch).
    public var backwardCalls: Int
    /// Image-level forward evaluations (the query count of score-based attacks), summed over images.
    public var queries: Int
}

/// An attack on a `DifferentiableClassifier` with images in [0, 1].
public protocol Attack {
    /// Short name for reports ("APGD-CE", "Square").
    var name: String { get }
    var budget: PerturbationBudget { get }
    /// Attacks `images` [N, C, H, W] in [0, 1] with true `labels`. Every random draw comes from
    /// `generator`, so the same generator state gives the same adversarial examples.
    func run(on classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
             generator: inout RandomGenerator) -> AttackResult
}

/// Which randomness values an attack uses with a randomized classifier.
///
/// The first draw is always `evaluationRandomness`, the value the defence is scored with, so
/// with `eotDraws == 1` the attack differentiates exactly the function that is scored. With
/// `eotDraws > 1` (EOT) each gradient averages over that draw and `eotDraws - 1` fresh values
/// from the attack's generator. For a deterministic classifier `eotDraws` is ignored (one draw).
public struct EOTSettings: Sendable, Equatable {
    public var eotDraws: Int
    public var evaluationRandomness: UInt64
    public init(eotDraws: Int = 1, evaluationRandomness: UInt64 = 0) {
        precondition(eotDraws >= 1)
        self.eotDraws = eotDraws; self.evaluationRandomness = evaluationRandomness
    }
}

/// Per-image losses an attack maximizes, built from logits [N, K] so they differentiate.
public enum AttackLoss: Sendable, Equatable {
    /// Cross-entropy -log softmax(z)_y.
    case crossEntropy
    /// Difference of logits ratio (Croce & Hein 2020): -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3),
    /// pi the classes sorted by decreasing logit. Invariant to shift and scale of the logits.
    case dlr
    /// Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), one target t per image.
    case dlrTargeted(targets: [Int])

    static let denominatorEpsilon: Float = 1e-12

    /// Per-image loss [N] (recorded for autodiff when `logits` is).
    public func perImage(_ logits: Tensor, labels: [Int]) -> Tensor {
        let n = logits.shape[0], k = logits.shape[1]
        let z = logits.detached().scalars
        switch self {
        case .crossEntropy:
            var onehot = [Float](repeating: 0, count: n * k)
            for i in 0..<n { onehot[i * k + labels[i]] = 1 }
            return -(logits.logSoftmax(axis: 1) * Tensor(shape: [n, k], onehot)).sum(axes: [1])
        case .dlr, .dlrTargeted:
            var a = [Float](repeating: 0, count: n * k), b = a
            for i in 0..<n {
                let row = Array(z[(i * k)..<((i + 1) * k)])
                let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                let y = labels[i]
                a[i * k + y] += 1
                b[i * k + order[0]] += 1
                if case .dlrTargeted(let targets) = self {
                    precondition(k >= 4, "targeted DLR needs at least 4 classes")
                    a[i * k + targets[i]] -= 1
                    b[i * k + order[2]] -= 0.5
                    b[i * k + order[3]] -= 0.5
                } else {
                    precondition(k >= 3, "DLR needs at least 3 classes")
                    let other = order[0] == y ? order[1] : order[0]
                    a[i * k + other] -= 1
                    b[i * k + order[2]] -= 1
                }
            }
            let num = (logits * Tensor(shape: [n, k], a)).sum(axes: [1])
            let den = (logits * Tensor(shape: [n, k], b)).sum(axes: [1]) + AttackLoss.denominatorEpsilon
            return -(num / den)
        }
    }

    /// The same loss on plain values (for tests and reporting).
    public static func value(_ loss: AttackLoss, logits: [Float], classCount k: Int, labels: [Int]) -> [Float] {
        Autograd.noGrad {
            loss.perImage(Tensor(shape: [labels.count, k], logits), labels: labels).scalars
        }
    }

    /// The subset of this loss for images `rows` (targets follow their images).
    func subset(_ rows: [Int]) -> AttackLoss {
        if case .dlrTargeted(let t) = self { return .dlrTargeted(targets: rows.map { t[$0] }) }
        return self
    }
}

/// Margin z_y - max_{i != y} z_i per image: negative exactly when the image is misclassified
/// (ties count as correct only when the label is the first maximum).
func margins(_ z: [Float], classCount k: Int, labels: [Int]) -> [Float] {
    labels.indices.map { i in
        var best = -Float.infinity
        for j in 0..<k where j != labels[i] { best = Swift.max(best, z[i * k + j]) }
        return z[i * k + labels[i]] - best
    }
}

/// argmax with the first maximum winning (as torch.max).
func predictions(_ z: [Float], classCount k: Int) -> [Int] {
    stride(from: 0, to: z.count, by: k).map { s in
        var bi = 0
        for j in 1..<k where z[s + j] > z[s + bi] { bi = j }
        return bi
    }
}

/// Wraps a classifier, counts its calls, and evaluates losses with EOT.
final class ClassifierOracle {
    let classifier: DifferentiableClassifier
    let eot: EOTSettings
    let imageShape: [Int]
    var forwardCalls = 0, backwardCalls = 0, queries = 0
    var imageSize: Int { imageShape.reduce(1, *) }
    var k: Int { classifier.classCount }

    init(_ classifier: DifferentiableClassifier, eot: EOTSettings, imageShape: [Int]) {
        self.classifier = classifier; self.eot = eot; self.imageShape = imageShape
    }

    func tensor(_ x: [Float], count n: Int) -> Tensor { Tensor(shape: [n] + imageShape, x) }

    /// Logits at the evaluation randomness, no autodiff.
    func logits(_ x: [Float], count n: Int) -> [Float] {
        forwardCalls += 1; queries += n
        let t = tensor(x, count: n)
        return Autograd.noGrad { classifier.logits(t, randomness: eot.evaluationRandomness).scalars }
    }

    /// Randomness values for one EOT gradient.
    func draws(_ generator: inout RandomGenerator) -> [UInt64] {
        guard classifier.isRandomized, eot.eotDraws > 1 else { return [eot.evaluationRandomness] }
        return [eot.evaluationRandomness] + (1..<eot.eotDraws).map { _ in generator.nextUInt64() }
    }

    /// Per-image loss (mean over EOT draws), its gradient (mean over draws), and the logits at the
    /// evaluation randomness.
    func lossAndGradient(_ x: [Float], count n: Int, labels: [Int], loss: AttackLoss,
                         generator: inout RandomGenerator) -> (loss: [Float], gradient: [Float], logits: [Float]) {
        let rs = draws(&generator)
        var lossSum = [Float](repeating: 0, count: n)
        var gradSum = [Float](repeating: 0, count: x.count)
        var evalLogits: [Float] = []
        for (d, r) in rs.enumerated() {
            var perImage: [Float] = []
            var z: [Float] = []
            let (_, grads) = valueAndGradient(at: [tensor(x, count: n)]) { xs in
                let logits = classifier.logits(xs[0], randomness: r)
                z = logits.detached().scalars
                let l = loss.perImage(logits, labels: labels)
                perImage = l.detached().scalars
                return l.sum()
            }
            forwardCalls += 1; backwardCalls += 1; queries += n
            if d == 0 { evalLogits = z }
            for i in 0..<n { lossSum[i] += perImage[i] }
            let g = grads[0].scalars
            for i in 0..<g.count { gradSum[i] += g[i] }
        }
        let inv = 1 / Float(rs.count)
        if rs.count > 1 {
            for i in 0..<n { lossSum[i] *= inv }
            for i in 0..<gradSum.count { gradSum[i] *= inv }
        }
        return (lossSum, gradSum, evalLogits)
    }
}

/// Random start inside the budget ball (uniform per coordinate for l_inf; a Gaussian direction
/// scaled to a uniform fraction of epsilon for l_2), clamped to [0, 1].
func randomStart(_ clean: [Float], imageSize: Int, budget: PerturbationBudget,
                 generator: inout RandomGenerator) -> [Float] {
    var x = clean
    let n = clean.count / imageSize
    for img in 0..<n {
        let r = (img * imageSize)..<((img + 1) * imageSize)
        switch budget.norm {
        case .linf:
            for i in r { x[i] = clean[i] + generator.nextFloat(low: -budget.epsilon, high: budget.epsilon) }
        case .l2:
            let dir = generator.normals(count: imageSize)
            let norm = dir.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let radius = budget.epsilon * generator.nextFloat()
            for (j, i) in r.enumerated() { x[i] = clean[i] + dir[j] / (norm + 1e-12) * radius }
        }
        budget.project(&x, clean: clean, range: r)
    }
    return x
}

extension Array where Element == Float {
    func rows(_ rows: [Int], size: Int) -> [Float] {
        var out = [Float](); out.reserveCapacity(rows.count * size)
        for r in rows { out.append(contentsOf: self[(r * size)..<((r + 1) * size)]) }
        return out
    }
    mutating func setRows(_ rows: [Int], size: Int, from src: [Float]) {
        for (j, r) in rows.enumerated() {
            for t in 0..<size { self[r * size + t] = src[j * size + t] }
        }
    }
}
