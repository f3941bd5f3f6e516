import NeuralNetworks
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

    /// The name recorded in `settings.json` (`timesteps`): grid, grid:B, uniform, stratified or
    /// explicit.
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

    /// Checks the sampler against the range. Errors name `count` (the parameter that set the
    /// number of timesteps) and `Setting.timesteps`.
    public func validate(range: Range<Int>, count: Setting = .nTimesteps) throws {
        let p: ErrorText = "\(count)/\(Setting.timesteps)"
        guard !range.isEmpty else { throw ClassifierError("\(p): empty timestep range \(range)") }
        switch self {
        case .grid(let n), .stratified(let n):
            guard n >= 1 && n <= range.count else {
                throw ClassifierError("\(p): \(n) timesteps, need 1...\(range.count) for the range \(range.lowerBound):\(range.upperBound)")
            }
        case .subgrid(let n, let base):
            guard base >= 1 && base <= range.count else {
                throw ClassifierError("\(p): a grid of \(base) timesteps does not fit the range \(range.lowerBound):\(range.upperBound)")
            }
            guard n >= 1 && n <= base else { throw ClassifierError("\(p): \(n) timesteps from a grid of \(base), need 1...\(base)") }
        case .uniform(let n):
            guard n >= 1 else { throw ClassifierError("\(p): need at least 1 timestep, got \(n)") }
        case .explicit(let list):
            guard !list.isEmpty else { throw ClassifierError("\(p): empty timestep list") }
            for t in list where !range.contains(t) {
                throw ClassifierError("\(p): timestep \(t) outside \(range.lowerBound)..<\(range.upperBound)")
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

extension TimestepSampler {
    /// The count recorded in `settings.json` (`n_timesteps`): nil for an explicit list.
    public var countSetting: Int? {
        if case .explicit = self { return nil }
        return count
    }

    /// The list recorded in `settings.json` (`timestep_list`), for an explicit list only.
    public var list: [Int]? {
        if case .explicit(let l) = self { return l }
        return nil
    }

    /// The sampler recorded in `settings.json`: its `name` with `count` (grid, grid:B, uniform,
    /// stratified) or `list` (explicit). Errors name the missing or malformed part.
    public init(name: String, count: Int?, list: [Int]?) throws {
        if name == "explicit" {
            guard let list else { throw ClassifierError("\(Setting.timesteps): explicit timesteps need a list") }
            self = .explicit(list)
            return
        }
        let kind = try Self.kind(name)
        guard let count else { throw ClassifierError("\(Setting.nTimesteps): missing for \(Setting.timesteps) \(name)") }
        self = kind(count)
    }

    /// Text as written by a user: a sampler name (grid, grid:B, uniform, stratified) drawing
    /// `count` timesteps, or a list `t1,t2,...` (then `count` is not used).
    public init(parsing text: String, count: Int) throws {
        if Self.isKindName(text) || text.hasPrefix("grid:") {
            self = try Self.kind(text)(count)
            return
        }
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ClassifierError("\(Setting.timesteps): '\(text)' is not grid, grid:B, uniform, stratified or a list t1,t2,...")
        }
        self = .explicit(values.map { $0! })
    }

    /// Whether `text` names a sampler kind (not a list).
    public static func isKindName(_ text: String) -> Bool { (try? kind(text)) != nil }

    /// The sampler kind called `name`, as a function of the count.
    static func kind(_ name: String) throws -> (Int) -> TimestepSampler {
        switch name {
        case "grid": return { .grid($0) }
        case "uniform": return { .uniform($0) }
        case "stratified": return { .stratified($0) }
        case let n where n.hasPrefix("grid:"):
            guard let base = Int(n.dropFirst(5)), base >= 1 else {
                throw ClassifierError("\(Setting.timesteps): '\(n)' is not grid:B with B a positive number of grid timesteps")
            }
            return { .subgrid($0, of: base) }
        default:
            throw ClassifierError("\(Setting.timesteps): unknown sampler '\(name)' (grid, grid:B, uniform, stratified, or a list t1,t2,...)")
        }
    }
}
