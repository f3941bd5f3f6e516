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
        let size = oracle.imageSize, n = labels.count, k = oracle.k
        let eps = budget.epsilon
        let clean = images.detached().scalars
        // Stripes initialization.
        var best = clean
        for img in 0..<n {
            for ch in 0..<c {
                for col in 0..<w {
                    let sign: Float = generator.nextUInt32() & 1 == 0 ? -1 : 1
                    for row in 0..<h {
                        let i = img * size + (ch * h + row) * w + col
                        best[i] = min(max(clean[i] + eps * sign, 0), 1)
                    }
                }
            }
        }
        var z = oracle.logits(best, count: n)
        var marginBest = margins(z, classCount: k, labels: labels)
        var fooled = zip(predictions(z, classCount: k), labels).map { $0 != $1 }
        for it in 0..<max(queries - 1, 0) {
            let active = (0..<n).filter { !fooled[$0] }
            if active.isEmpty { break }
            let p = SquareAttack.squareFraction(iteration: it, queries: queries, pInit: pInit)
            var side = max(Int((p * Float(size) / Float(c)).squareRoot().rounded()), 1)
            side = min(side, h - 1)
            var candidates = best.rows(active, size: size)
            for (j, img) in active.enumerated() {
                let vh = generator.nextInt(upperBound: h - side + 1)
                let vw = generator.nextInt(upperBound: w - side + 1)
                for _ in 0..<10 {
                    var changed = false
                    var window: [(Int, Float)] = []
                    for ch in 0..<c {
                        let sign: Float = generator.nextUInt32() & 1 == 0 ? -1 : 1
                        for row in vh..<(vh + side) {
                            for col in vw..<(vw + side) {
                                let o = (ch * h + row) * w + col
                                let ci = img * size + o
                                let v = min(max(clean[ci] + eps * sign, 0), 1)
                                if Swift.abs(v - best[ci]) > 1e-7 { changed = true }
                                window.append((j * size + o, v))
                            }
                        }
                    }
                    for (i, v) in window { candidates[i] = v }
                    if changed { break }
                }
            }
            z = oracle.logits(candidates, count: active.count)
            let m = margins(z, classCount: k, labels: active.map { labels[$0] })
            let pred = predictions(z, classCount: k)
            for (j, img) in active.enumerated() {
                let miss = pred[j] != labels[img]
                if m[j] < marginBest[img] || miss {
                    marginBest[img] = m[j]
                    best.replaceSubrange((img * size)..<((img + 1) * size), with: candidates[(j * size)..<((j + 1) * size)])
                    if miss { fooled[img] = true }
                }
            }
        }
        return AttackResult(adversarial: Tensor(shape: images.shape, best), success: fooled,
                            forwardCalls: oracle.forwardCalls, backwardCalls: 0, queries: oracle.queries)
    }
}
