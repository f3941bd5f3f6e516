import TensorEngine

/// How the timesteps of a fixed (non-staged) evaluation are chosen, within a range A..<B of
/// 0..<T (the whole schedule unless `--t-range` says otherwise).
///
/// - `grid(n)`: the public code's evenly spaced grid (`TimestepGrid.grid`) with max_n = n.
/// - `subgrid(n, of: b)`: the n-point stage sub-grid (`TimestepGrid.stage`) of the b-point grid:
///   the timesteps a staged schedule whose largest stage has b timesteps scores in a stage of n
///   (`--timesteps grid:500 --n-timesteps 50` is stage one of `--stages 5:50,1:500`: 11, 31, ...,
///   991), so a rule on it can be replayed over such a staged run. (Ours; the public code has no flag.)
/// - `uniform(n)`: n independent uniform draws from A..<B (with replacement), from the image's
///   timestep generator. (Not in the public code, which is grid-only.)
/// - `stratified(n)`: A..<B cut into n strata [A + k L / n, A + (k + 1) L / n) (integer
///   division), one uniform draw in each, in increasing order. Requires n <= L.
/// - `explicit(list)`: exactly these timesteps, in this order (each must lie in A..<B).
public enum TimestepSampler: Equatable, Sendable {
    case grid(Int)
    case subgrid(Int, of: Int)
    case uniform(Int)
    case stratified(Int)
    case explicit([Int])

    public var count: Int {
        switch self {
        case .grid(let n), .uniform(let n), .stratified(let n), .subgrid(let n, _): return n
        case .explicit(let list): return list.count
        }
    }

    /// The name used in settings and on the command line.
    public var name: String {
        switch self {
        case .grid: return "grid"
        case .subgrid(_, let base): return "grid:\(base)"
        case .uniform: return "uniform"
        case .stratified: return "stratified"
        case .explicit: return "explicit"
        }
    }

    /// Whether the draw needs a random generator (and so depends on the seed).
    public var isRandom: Bool {
        switch self {
        case .uniform, .stratified: return true
        case .grid, .subgrid, .explicit: return false
        }
    }

    /// Checks the sampler against the range; the message names `flag`.
    public func validate(range: Range<Int>, flag: String) throws {
        guard !range.isEmpty else { throw ClassifierError("\(flag): empty timestep range \(range)") }
        switch self {
        case .grid(let n), .stratified(let n):
            guard n >= 1 && n <= range.count else {
                throw ClassifierError("\(flag): \(n) timesteps, need 1...\(range.count) for the range \(range.lowerBound):\(range.upperBound)")
            }
        case .subgrid(let n, let base):
            guard base >= 1 && base <= range.count else {
                throw ClassifierError("\(flag): a grid of \(base) timesteps does not fit the range \(range.lowerBound):\(range.upperBound)")
            }
            guard n >= 1 && n <= base else { throw ClassifierError("\(flag): \(n) timesteps from a grid of \(base), need 1...\(base)") }
        case .uniform(let n):
            guard n >= 1 else { throw ClassifierError("\(flag): need at least 1 timestep, got \(n)") }
        case .explicit(let list):
            guard !list.isEmpty else { throw ClassifierError("\(flag): empty timestep list") }
            for t in list where !range.contains(t) {
                throw ClassifierError("\(flag): timestep \(t) outside \(range.lowerBound)..<\(range.upperBound)")
            }
        }
    }

    /// The timesteps, in scoring order.
    public func timesteps(range: Range<Int>, generator: inout RandomGenerator) -> [Int] {
        switch self {
        case .grid(let n):
            return TimestepGrid.grid(range: range, maxN: n)
        case .subgrid(let n, let base):
            return TimestepGrid.stage(TimestepGrid.grid(range: range, maxN: base), n: n)
        case .uniform(let n):
            return (0..<n).map { _ in range.lowerBound + generator.nextInt(upperBound: range.count) }
        case .stratified(let n):
            let length = range.count
            return (0..<n).map { k in
                let lo = k * length / n, hi = (k + 1) * length / n
                return range.lowerBound + lo + generator.nextInt(upperBound: hi - lo)
            }
        case .explicit(let list):
            return list
        }
    }
}
