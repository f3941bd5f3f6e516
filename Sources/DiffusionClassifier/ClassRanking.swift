/// The order of an image's classes, best first, for top-k accuracy (ours; the public code ranks
/// only the survivors of its last stage). Classes that saw more probes rank above classes that
/// saw fewer, so a class eliminated early ranks below every class that outlasted it (by its
/// stage, or the sequential rules' round); among classes of equal count, the survivors (still in
/// the running when the strategy stopped) come first, then lower mean error, then lower index.
/// Classes of equal count were scored on the same probes (a stage's, or a round's prefix), so
/// their means are comparable. On fixed timesteps (every class on every probe, every class a
/// survivor) this is the order of the mean errors. The prediction is first whatever the counts
/// (a strategy's survivors normally saw the most probes, so this only matters for custom ones).
public enum ClassRanking {
    /// The candidates 0..<meanErrors.count, best first: `prediction`, then the others as above. A
    /// class never scored (mean nil) ranks below every scored one of its count.
    public static func rank(prediction: Int, survivors: [Int], scoreCounts: [Int], meanErrors: [Double?]) -> [Int] {
        // A record read from a file may have fewer counts than means: missing counts are 0.
        let count = { (c: Int) in scoreCounts.indices.contains(c) ? scoreCounts[c] : 0 }
        var survived = [Bool](repeating: false, count: meanErrors.count)
        for s in survivors where survived.indices.contains(s) { survived[s] = true }
        let others = meanErrors.indices.filter { $0 != prediction }.sorted { a, b in
            if count(a) != count(b) { return count(a) > count(b) }
            if survived[a] != survived[b] { return survived[a] }
            let ma = meanErrors[a] ?? .infinity, mb = meanErrors[b] ?? .infinity
            return ma != mb ? ma < mb : a < b
        }
        return meanErrors.indices.contains(prediction) ? [prediction] + others : others
    }

    /// Whether `label` is among the first `k` of `ranking`.
    public static func isInTop(_ k: Int, label: Int, ranking: [Int]) -> Bool { ranking.prefix(k).contains(label) }
}
