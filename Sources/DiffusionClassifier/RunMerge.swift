import Foundation

/// What `EvaluationRun.merge` did.
public struct MergeReport: Sendable {
    public let summary: EvaluationSummary
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices of the run that no shard has (`MergedShards.missing`).
    public let missing: [Int]
    /// The run's image count the shards record (nil: unknown).
    public let runImages: Int?
}

extension EvaluationRun {
    /// Joins shard folders (`eval --shard I/N` runs, or any runs of equal settings) into one run
    /// folder `out`: `settings.json` copied, `results.jsonl` = every shard's complete lines, byte
    /// for byte, sorted by index, and `summary.json` recomputed over them. Per-image results depend
    /// only on the settings, the image and its index, so merged shards give the lines of one
    /// unsharded run (up to each line's `seconds`).
    ///
    /// Refused: shards whose `settings.json` differ (the error names both folders and the
    /// settings), an index present in two shards (naming both), a shard without `settings.json`,
    /// and an `out` that already holds a run. An unterminated last line (a shard killed
    /// mid-write) is left out, as a resume would. The summary's class names, batch size and
    /// thread count come from the first shard with a `summary.json` (class names default to
    /// "0", "1", ...); its `limit` is the shards' common limit (nil if they differ), its `shard` nil.
    /// The run's image count is the shards' common `run_images` (or, for summaries written
    /// before it was recorded, their common `limit`); an index of the run in no shard is refused
    /// before anything is written unless `allowPartial` (then reported in `missing`).
    public static func merge(_ shards: [URL], into out: URL, allowPartial: Bool = false) throws -> MergeReport {
        let m = try EvaluationFolder.merge(shards, into: out, summary: ShardSummaryInfo.self, allowPartial: allowPartial) { infos in
            let counts = Set(infos.map { $0.runImages ?? $0.limit ?? -1 })
            guard counts.count == 1, let n = counts.first, n >= 0 else { return nil }
            return n
        }
        let first = m.summaries.first
        let limits = Set(m.summaries.map { $0.limit ?? -1 })
        let limit = limits.count == 1 ? first?.limit : nil
        let names = first?.classNames ?? (0..<m.settings.classes).map(String.init)
        let summary = EvaluationSummary(records: m.records, classNames: names, settings: m.settings,
                                        batchSize: first?.batchSize ?? 0, threads: first?.threads ?? 0, scope: RunScope(limit: limit))
        var merged = summary
        merged.runImages = m.runImages
        let calibrations = Set(m.summaries.map { $0.calibration ?? "" })
        merged.calibration = calibrations.count == 1 ? first?.calibration : nil
        try m.folder.writeSummary(merged)
        return MergeReport(summary: merged, counts: m.counts, missing: m.missing, runImages: m.runImages)
    }
}

/// The parts of a shard's `summary.json` a merged summary reuses.
private struct ShardSummaryInfo: Decodable {
    var classNames: [String]
    var batchSize: Int
    var threads: Int
    var limit: Int?
    var runImages: Int?
    var calibration: String?
}
