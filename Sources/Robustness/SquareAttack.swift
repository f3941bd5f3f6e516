import DiffusionClassifier
import TensorEngine

/// Square attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020), l_inf version: a
/// score-based black-box attack that only reads logits.
///
/// **Matches AutoAttack's `SquareAttack` (l_inf, margin loss):** initialization with vertical
/// stripes of +/-eps per channel and column; per iteration one square of side
/// s = max(round(sqrt(p * C*H*W / C)), 1) (at most H - 1) set to +/-eps around the clean image per
/// channel, p following AutoAttack's `p_selection` schedule on it/queries*10000 (p_init, halved at
/// 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000); a candidate is kept when the margin
/// z_y - max_{i != y} z_i decreases; fooled images stop querying; `queries` counts the initial
/// evaluation too (so at most `queries` per image).
///
/// **Differs:** like the original (numpy) Square attack and unlike AutoAttack's batched
/// PyTorch code, each image draws its own square position, and a square whose signs would leave
/// the image unchanged is redrawn (up to 10 times); only the l_inf version exists (no l_2); the
/// margin is read at `evaluationRandomness` only (no EOT averaging of the scores); random draws
/// come from this package's Philox generator.
public struct SquareAttack: Attack {
    public var budget: PerturbationBudget
    /// Query budget per image (AutoAttack: 5,000).
    public var queries: Int
    public var pInit: Float
    public var evaluationRandomness: UInt64

    public init(budget: PerturbationBudget, queries: Int = 5000, pInit: Float = 0.8, evaluationRandomness: UInt64 = 0) {
        precondition(budget.norm == .linf, "SquareAttack: only the l_inf version is implemented")
        self.budget = budget; self.queries = queries; self.pInit = pInit
        self.evaluationRandomness = evaluationRandomness
    }

    public var name: String { "Square" }

    /// AutoAttack's `p_selection`: the fraction of pixels changed at iteration `it` of `queries`.
    public static func squareFraction(iteration: Int, queries: Int, pInit: Float) -> Float {
        let it = Int(Double(iteration) / Double(queries) * 10000)
        let divisor: Float
        switch it {
        case ...10: divisor = 1
        case 11...50: divisor = 2
        case 51...200: divisor = 4
        case 201...500: divisor = 8
        case 501...1000: divisor = 16
        case 1001...2000: divisor = 32
        case 2001...4000: divisor = 64
        case 4001...6000: divisor = 128
        case 6001...8000: divisor = 256
        default: divisor = 512
        }
        return pInit / divisor
    }

    public func run(on classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
                    generator: inout RandomGenerator) -> AttackResult {
        precondition(images.rank == 4, "SquareAttack: images must be [N, C, H, W]")
        let imageShape = Array(images.shape.dropFirst())
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        let oracle = ClassifierOracle(classifier, eot: EOTSettings(eotDraws: 1, evaluationRandomness: evaluationRandomness),
                                      imageShape: imageShape)
        let n = labels.count, k = oracle.k
        let eps = budget.epsilon
        let clean = images.detached()
        // Stripes initialization: one sign per (image, channel, column), drawn in that order.
        var stripes = [Float](repeating: 0, count: n * c * w)
        for i in stripes.indices { stripes[i] = generator.nextUInt32() & 1 == 0 ? -1 : 1 }
        var best = Autograd.noGrad { (clean + Tensor(shape: [n, c, 1, w], stripes) * eps).clamp(min: 0, max: 1) }
        var z = oracle.logits(best)
        var marginBest = margins(z, classCount: k, labels: labels)
        var fooled = zip(predictions(z, classCount: k), labels).map { $0 != $1 }
        for it in 0..<max(queries - 1, 0) {
            let active = (0..<n).filter { !fooled[$0] }
            if active.isEmpty { break }
            let p = SquareAttack.squareFraction(iteration: it, queries: queries, pInit: pInit)
            var side = max(Int((p * Float(oracle.imageSize) / Float(c)).squareRoot().rounded()), 1)
            side = min(side, h - 1)
            let candidates: Tensor = Autograd.noGrad {
                var rows: [Tensor] = []
                for img in active {
                    let cleanImage = clean.sliced(axis: 0, img..<(img + 1)), bestImage = best.sliced(axis: 0, img..<(img + 1))
                    let vh = generator.nextInt(upperBound: h - side + 1)
                    let vw = generator.nextInt(upperBound: w - side + 1)
                    var window = [Float](repeating: 0, count: h * w)
                    for row in vh..<(vh + side) { for col in vw..<(vw + side) { window[row * w + col] = 1 } }
                    let inWindow = Tensor(shape: [1, 1, h, w], window)
                    // Signs per channel; redrawn (up to 10 times) while they would leave the square unchanged.
                    var square = cleanImage
                    for _ in 0..<10 {
                        let signs = (0..<c).map { _ in generator.nextUInt32() & 1 == 0 ? Float(-1) : 1 }
                        square = (cleanImage + Tensor(shape: [1, c, 1, 1], signs) * eps).clamp(min: 0, max: 1)
                        let change = ((square - bestImage).abs() * inWindow).max().item
                        if change > 1e-7 { break }
                    }
                    rows.append(Tensor.where(inWindow, square, bestImage))
                }
                return Tensor.concat(rows, axis: 0)
            }
            z = oracle.logits(candidates)
            let m = margins(z, classCount: k, labels: active.map { labels[$0] })
            let pred = predictions(z, classCount: k)
            var accepted: [Int] = []
            for (j, img) in active.enumerated() {
                let miss = pred[j] != labels[img]
                if m[j] < marginBest[img] || miss {
                    marginBest[img] = m[j]
                    accepted.append(j)
                    if miss { fooled[img] = true }
                }
            }
            if !accepted.isEmpty {
                best = Autograd.noGrad { best.replacingRows(accepted.map { active[$0] }, with: candidates.gatherRows(accepted)) }
            }
        }
        return AttackResult(adversarial: best, success: fooled,
                            forwardCalls: oracle.forwardCalls, backwardCalls: 0, queries: oracle.queries)
    }
}
