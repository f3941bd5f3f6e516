import Foundation

/// What `EvaluationRun.merge` did.
public struct MergeReport: Sendable {
    public let summary: EvaluationSummary
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices below the largest merged index that no shard has (a shard missing or unfinished).
    public let missing: [Int]
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
    /// Gaps are reported in `missing`, not refused: merging part of a sharded run is allowed.
    public static func merge(_ shards: [URL], into out: URL) throws -> MergeReport {
        guard !shards.isEmpty else { throw ClassifierError("merge: no run folders given") }
        let fm = FileManager.default
        var settings: EvaluationSettings?
        var lines: [(index: Int, line: Data, record: ImageRecord)] = []
        var owner: [Int: URL] = [:]
        var counts: [Int] = []
        var info: [ShardSummaryInfo] = []
        for dir in shards {
            let settingsURL = dir.appendingPathComponent("settings.json")
            guard fm.fileExists(atPath: settingsURL.path) else { throw ClassifierError("\(dir.path): no settings.json (not a run folder)") }
            let s: EvaluationSettings
            do { s = try EvaluationSettings.decode(try Data(contentsOf: settingsURL)) } catch {
                throw ClassifierError("\(settingsURL.path): unreadable settings (\(error))")
            }
            if let first = settings {
                let diff = try s.differences(from: first)
                guard diff.isEmpty else {
                    throw ClassifierError("\(shards[0].path) and \(dir.path) have different settings "
                        + "(\(diff.joined(separator: "; "))); only runs of equal settings can be merged")
                }
            } else {
                settings = s
            }
            let resultsURL = dir.appendingPathComponent("results.jsonl")
            let data = fm.fileExists(atPath: resultsURL.path) ? try Data(contentsOf: resultsURL) : Data()
            let parsed = try parseResults(data, path: resultsURL.path)
            for (r, line) in parsed {
                if let other = owner[r.index] {
                    throw ClassifierError("image \(r.index) is in both \(other.path) and \(dir.path); shards must not overlap")
                }
                owner[r.index] = dir
                lines.append((r.index, line, r))
            }
            counts.append(parsed.count)
            let summaryURL = dir.appendingPathComponent("summary.json")
            if fm.fileExists(atPath: summaryURL.path) {
                do {
                    let d = JSONDecoder()
                    d.keyDecodingStrategy = .convertFromSnakeCase
                    info.append(try d.decode(ShardSummaryInfo.self, from: try Data(contentsOf: summaryURL)))
                } catch {
                    throw ClassifierError("\(summaryURL.path): unreadable summary (\(error))")
                }
            }
        }
        let settings_ = settings!
        lines.sort { $0.index < $1.index }

        // The output folder: a new run, never an existing one (nor one of the inputs).
        let run = EvaluationRun.Paths(out)
        for url in [run.settings, run.results, run.summary] where fm.fileExists(atPath: url.path) {
            throw ClassifierError("\(url.path) exists; merge writes a new run folder (use another --out)")
        }
        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(out.path): cannot create the run folder: \(error.localizedDescription)")
        }
        try settings_.encoded().write(to: run.settings, options: .atomic)
        var joined = Data()
        for l in lines { joined.append(l.line) }
        try joined.write(to: run.results, options: .atomic)

        let first = info.first
        let limits = Set(info.map { $0.limit ?? -1 })
        let limit = limits.count == 1 ? info.first?.limit : nil
        let names = first?.classNames ?? (0..<settings_.classes).map(String.init)
        let summary = EvaluationSummary(records: lines.map(\.record), classNames: names, settings: settings_,
                                        batchSize: first?.batchSize ?? 0, threads: first?.threads ?? 0, scope: RunScope(limit: limit))
        try summary.write(to: run.summary)
        let present = Set(owner.keys)
        let missing = (0..<((lines.last?.index ?? -1) + 1)).filter { !present.contains($0) }
        return MergeReport(summary: summary, counts: counts, missing: missing)
    }

    /// The three files of a run folder.
    struct Paths {
        let settings: URL, results: URL, summary: URL
        init(_ dir: URL) {
            settings = dir.appendingPathComponent("settings.json")
            results = dir.appendingPathComponent("results.jsonl")
            summary = dir.appendingPathComponent("summary.json")
        }
    }
}

/// The parts of a shard's `summary.json` a merged summary reuses.
private struct ShardSummaryInfo: Decodable {
    var classNames: [String]
    var batchSize: Int
    var threads: Int
    var limit: Int?
}
