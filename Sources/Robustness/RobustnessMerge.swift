import DiffusionClassifier
import Foundation

/// What `RobustnessRun.merge` did.
public struct RobustMergeReport: Sendable {
    public let summary: RobustSummary
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices of the run that no shard has (`MergedShards.missing`).
    public let missing: [Int]
}

extension RobustnessRun {
    /// Joins robustness run folders of equal settings (`robust --shard I/N` runs) into a new run
    /// folder `out`, as `EvaluationRun.merge` does for eval runs: `settings.json` copied,
    /// `results.jsonl` = every shard's complete lines, byte for byte, sorted by index, and
    /// `summary.json` recomputed over them (its `limit` the shards' common limit, nil if they
    /// differ; `shard` nil; `threads` and `class_names` the first shard's). A line depends only on the settings,
    /// the image and its index, so merged shards give the lines of one unsharded run (up to
    /// `seconds`). Refused: different settings (naming both folders and the differences), an
    /// index in two shards, a folder without `settings.json`, an `out` that already holds a run.
    /// The run's image count is the shards' common `limit` (unknown without one); an index of
    /// the run in no shard is refused before anything is written unless `allowPartial`.
    public static func merge(_ shards: [URL], into out: URL, allowPartial: Bool = false) throws -> RobustMergeReport {
        let m = try RobustnessFolder.merge(shards, into: out, summary: ShardInfo.self, allowPartial: allowPartial) { infos in
            let limits = Set(infos.map { $0.limit ?? -1 })
            guard limits.count == 1, let n = limits.first, n >= 0 else { return nil }
            return n
        }
        let first = m.summaries.first
        let limits = Set(m.summaries.map { $0.limit ?? -1 })
        let summary = RobustSummary(records: m.records, settings: m.settings, limit: limits.count == 1 ? first?.limit : nil,
                                    shard: nil, threads: first?.threads ?? 0, classNames: first?.classNames)
        try m.folder.writeSummary(summary)
        return RobustMergeReport(summary: summary, counts: m.counts, missing: m.missing)
    }
}

/// The parts of a shard's `summary.json` a merged summary reuses.
private struct ShardInfo: Decodable {
    var threads: Int
    var limit: Int?
    var classNames: [String]?
}
