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

    /// Projects the batch `x` [N, ...] onto the ball around `clean` and then onto [0, 1], image by
    /// image. For l_inf the result lies in both sets exactly; for l_2 the box clamp follows the
    /// ball projection (as AutoAttack does), which can only shrink the l_2 distance.
    func project(_ x: Tensor, clean: Tensor) -> Tensor {
        Autograd.noGrad {
            switch norm {
            case .linf:
                return x.maximum(clean - epsilon).minimum(clean + epsilon).clamp(min: 0, max: 1)
            case .l2:
                let d = x - clean
                let n = PerturbationBudget.rowNorms(d)
                let scale = Tensor.where(n.greater(epsilon), epsilon / (n + 1e-12), Tensor(1))
                return (clean + d * scale).clamp(min: 0, max: 1)
            }
        }
    }

    /// The l_2 norm of each image of x [N, ...], as [N, 1, ...] (the squares summed in Float64).
    static func rowNorms(_ x: Tensor) -> Tensor {
        let axes = Array(1..<x.rank)
        return axes.isEmpty ? x.abs() : x.square().sum(axes: axes, keepDims: true).sqrt()
    }

    /// Distance of `x` from `clean` ([N, ...] each) in this norm, per image, [N].
    public func distances(_ x: Tensor, clean: Tensor) -> Tensor {
        Autograd.noGrad {
            let d = (x - clean).abs()
            let axes = Array(1..<d.rank)
            if axes.isEmpty { return d }
            return norm == .linf ? d.max(axes: axes) : d.square().sum(axes: axes).sqrt()
        }
    }

    /// `distances` for flat images of `imageSize` values.
    public func distances(_ x: [Float], clean: [Float], imageSize: Int) -> [Float] {
        let n = x.count / Swift.max(imageSize, 1)
        return distances(Tensor(shape: [n, imageSize], x), clean: Tensor(shape: [n, imageSize], clean)).scalars
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

/// A [N, 1, ..., 1] tensor (rank `rank`) of 1 where `flags` is true, else 0: a per-image mask for
/// `Tensor.where`.
func imageMask(_ flags: [Bool], rank: Int) -> Tensor {
    Tensor(shape: [flags.count] + [Int](repeating: 1, count: Swift.max(rank - 1, 0)), flags.map { $0 ? 1 : 0 })
}

/// A [N, 1, ..., 1] tensor (rank `rank`) of per-image values.
func imageValues(_ values: [Float], rank: Int) -> Tensor {
    Tensor(shape: [values.count] + [Int](repeating: 1, count: Swift.max(rank - 1, 0)), values)
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

    /// Logits [N, K] at the evaluation randomness, no autodiff, read to the host (for predictions
    /// and margins).
    func logits(_ x: Tensor) -> [Float] {
        forwardCalls += 1; queries += x.shape[0]
        return Autograd.noGrad { classifier.logits(x, randomness: eot.evaluationRandomness).scalars }
    }

    /// Randomness values for one EOT gradient.
    func draws(_ generator: inout RandomGenerator) -> [UInt64] {
        guard classifier.isRandomized, eot.eotDraws > 1 else { return [eot.evaluationRandomness] }
        return [eot.evaluationRandomness] + (1..<eot.eotDraws).map { _ in generator.nextUInt64() }
    }

    /// Per-image loss (mean over EOT draws, on the host: it steers step sizes and best points),
    /// its gradient with respect to x (mean over draws, a tensor like x), and the logits at the
    /// evaluation randomness (host).
    func lossAndGradient(_ x: Tensor, labels: [Int], loss: AttackLoss,
                         generator: inout RandomGenerator) -> (loss: [Float], gradient: Tensor, logits: [Float]) {
        let n = x.shape[0]
        let rs = draws(&generator)
        var lossSum = [Float](repeating: 0, count: n)
        var gradSum = Tensor.zeros(x.shape)
        var evalLogits: [Float] = []
        for (d, r) in rs.enumerated() {
            var perImage: [Float] = []
            var z: [Float] = []
            let (_, grads) = valueAndGradient(at: [x]) { xs in
                let logits = classifier.logits(xs[0], randomness: r)
                z = logits.detached().scalars
                let l = loss.perImage(logits, labels: labels)
                perImage = l.detached().scalars
                return l.sum()
            }
            forwardCalls += 1; backwardCalls += 1; queries += n
            if d == 0 { evalLogits = z }
            for i in 0..<n { lossSum[i] += perImage[i] }
            gradSum = Autograd.noGrad { gradSum + grads[0] }
        }
        let inv = 1 / Float(rs.count)
        if rs.count > 1 {
            for i in 0..<n { lossSum[i] *= inv }
            gradSum = Autograd.noGrad { gradSum * inv }
        }
        return (lossSum, gradSum, evalLogits)
    }

    /// `lossAndGradient` on flat host values of `count` images (for tests).
    func lossAndGradient(_ x: [Float], count n: Int, labels: [Int], loss: AttackLoss,
                         generator: inout RandomGenerator) -> (loss: [Float], gradient: [Float], logits: [Float]) {
        let r = lossAndGradient(Tensor(shape: [n] + imageShape, x), labels: labels, loss: loss, generator: &generator)
        return (r.loss, r.gradient.scalars, r.logits)
    }
}

/// Random start inside the budget ball (uniform per coordinate for l_inf; a Gaussian direction
/// scaled to a uniform fraction of epsilon for l_2), clamped to [0, 1]. The draws are those of
/// the scalar loop this replaces: l_inf, one `nextFloat(low:high:)` per coordinate in order;
/// l_2, per image `normals(count:)` then one `nextFloat()`.
func randomStart(_ clean: Tensor, budget: PerturbationBudget, generator: inout RandomGenerator) -> Tensor {
    Autograd.noGrad {
        switch budget.norm {
        case .linf:
            let u = Tensor.uniform(clean.shape, low: -budget.epsilon, high: budget.epsilon, generator: &generator,
                                   layout: .onePerBlock)
            return budget.project(clean + u, clean: clean)
        case .l2:
            let imageShape = [1] + Array(clean.shape.dropFirst())
            var steps: [Tensor] = []
            for _ in 0..<clean.shape[0] {
                let dir = Tensor.randn(imageShape, generator: &generator)
                let radius = budget.epsilon * generator.nextFloat()
                steps.append(dir / (PerturbationBudget.rowNorms(dir) + 1e-12) * radius)
            }
            return budget.project(clean + Tensor.concat(steps, axis: 0), clean: clean)
        }
    }
}

extension Array where Element == Float {
    /// Rows `rows` of flat rows of `size` values (host helper for the small-CNN training helpers).
    func rows(_ rows: [Int], size: Int) -> [Float] {
        var out = [Float](); out.reserveCapacity(rows.count * size)
        for r in rows { out.append(contentsOf: self[(r * size)..<((r + 1) * size)]) }
        return out
    }
}
