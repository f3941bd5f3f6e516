import DiffusionClassifier
import Foundation

/// What `RobustnessRun.merge` did.
public struct RobustMergeReport: Sendable {
    public let summary: RobustSummary
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices below the largest merged index that no shard has (a shard missing or unfinished).
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
    /// Gaps are reported in `missing`, not refused.
    public static func merge(_ shards: [URL], into out: URL) throws -> RobustMergeReport {
        guard !shards.isEmpty else { throw ClassifierError("merge: no run folders given") }
        let fm = FileManager.default
        var settings: RobustnessSettings?
        var lines: [(index: Int, line: Data, record: RobustRecord)] = []
        var owner: [Int: URL] = [:]
        var counts: [Int] = []
        var infos: [ShardInfo] = []
        for dir in shards {
            let settingsURL = dir.appendingPathComponent("settings.json")
            guard fm.fileExists(atPath: settingsURL.path) else { throw ClassifierError("\(dir.path): no settings.json (not a run folder)") }
            let s: RobustnessSettings
            do { s = try RobustnessSettings.decode(try Data(contentsOf: settingsURL)) } catch {
                throw ClassifierError("\(settingsURL.path): unreadable robustness settings (\(error))")
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
                let d = JSONDecoder()
                d.keyDecodingStrategy = .convertFromSnakeCase
                do { infos.append(try d.decode(ShardInfo.self, from: try Data(contentsOf: summaryURL))) } catch {
                    throw ClassifierError("\(summaryURL.path): unreadable summary (\(error))")
                }
            }
        }
        let merged = settings!
        lines.sort { $0.index < $1.index }
        let target = try RobustnessRun.newFolder(out)
        try merged.encoded().write(to: target.settings, options: .atomic)
        var joined = Data()
        for l in lines { joined.append(l.line) }
        try joined.write(to: target.results, options: .atomic)
        let limits = Set(infos.map { $0.limit ?? -1 })
        let summary = RobustSummary(records: lines.map(\.record), settings: merged,
                                    limit: limits.count == 1 ? infos.first?.limit : nil, shard: nil, threads: infos.first?.threads ?? 0,
                                    classNames: infos.first?.classNames)
        try summary.write(to: target.summary)
        let present = Set(owner.keys)
        let missing = (0..<((lines.last?.index ?? -1) + 1)).filter { !present.contains($0) }
        return RobustMergeReport(summary: summary, counts: counts, missing: missing)
    }

    /// Creates `out` for a merge, refusing one that already holds a run's files.
    static func newFolder(_ out: URL) throws -> (settings: URL, results: URL, summary: URL) {
        let fm = FileManager.default
        let urls = (out.appendingPathComponent("settings.json"), out.appendingPathComponent("results.jsonl"),
                    out.appendingPathComponent("summary.json"))
        for url in [urls.0, urls.1, urls.2] where fm.fileExists(atPath: url.path) {
            throw ClassifierError("\(url.path) exists; merge writes a new run folder (use another --out)")
        }
        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(out.path): cannot create the run folder: \(error.localizedDescription)")
        }
        return urls
    }

    /// Whether `directory`'s `settings.json` is a robustness run's (it has `attacks`).
    public static func isRobustnessFolder(_ directory: URL) -> Bool {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("settings.json")),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["attacks"] != nil && object["eps_text"] != nil
    }
}

/// The parts of a shard's `summary.json` a merged summary reuses.
private struct ShardInfo: Decodable {
    var threads: Int
    var limit: Int?
    var classNames: [String]?
}
