/// The evenly spaced timestep grid of the public Diffusion Classifier code
/// (`eval_prob_adaptive.py`), ported expression for expression:
///
///     max_n = max(n_samples); start = T // max_n // 2
///     grid = list(range(start, T, T // max_n))[:max_n]
///     stage s: grid[len(grid) // n_s // 2 :: len(grid) // n_s][:n_s]
///
/// `range` generalises T to a sub-range A..<B (`--t-range A:B`): the grid is built for length
/// B - A and shifted by A, so A = 0, B = T is the public code's grid exactly.
public enum TimestepGrid {
    /// `list(range(start, T, T // maxN))[:maxN]` with `start = T // maxN // 2`, over `range`.
    /// Requires 1 <= maxN <= range.count (Python raises on a zero step).
    public static func grid(range: Range<Int>, maxN: Int) -> [Int] {
        let length = range.count
        precondition(maxN >= 1 && maxN <= length, "TimestepGrid: \(maxN) timesteps do not fit in \(range)")
        let step = length / maxN, start = length / maxN / 2
        return Array(Swift.stride(from: start, to: length, by: step).prefix(maxN)).map { $0 + range.lowerBound }
    }

    /// The official grid over 0..<T.
    public static func grid(T: Int, maxN: Int) -> [Int] { grid(range: 0..<T, maxN: maxN) }

    /// `grid[len // n // 2 :: len // n][:n]`: the centred strided sub-grid of one stage.
    /// Requires 1 <= n <= grid.count.
    public static func stage(_ grid: [Int], n: Int) -> [Int] {
        precondition(n >= 1 && n <= grid.count, "TimestepGrid: stage of \(n) timesteps from a grid of \(grid.count)")
        let step = grid.count / n
        return Array(Swift.stride(from: step / 2, to: grid.count, by: step).prefix(n).map { grid[$0] })
    }
}
