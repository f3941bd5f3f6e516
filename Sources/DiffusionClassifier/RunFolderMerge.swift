import NeuralNetworks
import Foundation

/// The joined shards of a merge (`RunFolder.mergeShards`): what each kind of run needs to write
/// its own summary.
public struct MergedShards<Settings: RunSettings, Record, Info: Decodable> {
    public let settings: Settings
    /// Every shard's records, sorted by index.
    public let records: [Record]
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices below the largest merged index that no shard has (a shard missing or unfinished).
    public let missing: [Int]
    /// The parts of each shard's `summary.json` (shards without one are skipped), in order.
    public let summaries: [Info]
    /// Where the merged `summary.json` goes.
    public let summaryURL: URL
}

extension RunFolder {
    /// The records of `results.jsonl` text, each with its line's bytes (newline included), in
    /// file order; an unterminated last line (a run killed mid-write) is left out. A line that
    /// does not decode is an error naming `path`, the line number and `kind`.
    public static func parseLines<R>(_ data: Data, path: String, kind: String, decode: (Data) throws -> R) throws -> [(record: R, line: Data)] {
        let complete = data.last == 0x0A ? data : data.prefix((data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? data.startIndex)
        var out: [(record: R, line: Data)] = []
        for (n, line) in complete.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
            var bytes = Data(line)
            do {
                let record = try decode(bytes)
                bytes.append(0x0A)
                out.append((record, bytes))
            } catch {
                throw ClassifierError("\(path): line \(n + 1) is not a \(kind) (\(error))")
            }
        }
        return out
    }

    /// Joins shard folders of equal settings into the new run folder `out`, for `eval` and
    /// `robust` runs alike: `settings.json` copied, `results.jsonl` = every shard's complete lines,
    /// byte for byte, sorted by `index`; the caller writes the summary. Refused: no folders, a
    /// folder without `settings.json`, settings that differ (naming both folders and the
    /// differences), an index in two shards (naming both), an `out` that already holds a run.
    public static func mergeShards<S: RunSettings, R, I: Decodable>(
        _ shards: [URL], into out: URL, settings: S.Type, summary: I.Type,
        parse: (Data, String) throws -> [(record: R, line: Data)], index: (R) -> Int) throws -> MergedShards<S, R, I> {
        guard !shards.isEmpty else { throw ClassifierError("merge: no run folders given") }
        let fm = FileManager.default
        var first: S?
        var lines: [(index: Int, line: Data, record: R)] = []
        var owner: [Int: URL] = [:]
        var counts: [Int] = []
        var summaries: [I] = []
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        for dir in shards {
            let settingsURL = dir.appendingPathComponent("settings.json")
            guard fm.fileExists(atPath: settingsURL.path) else { throw ClassifierError("\(dir.path): no settings.json (not a run folder)") }
            let s: S
            do { s = try S.decode(try Data(contentsOf: settingsURL)) } catch {
                throw ClassifierError("\(settingsURL.path): unreadable settings (\(error))")
            }
            if let first {
                let diff = try s.differences(from: first)
                guard diff.isEmpty else {
                    throw ClassifierError("\(shards[0].path) and \(dir.path) have different settings "
                        + "(\(diff.joined(separator: "; "))); only runs of equal settings can be merged")
                }
            } else {
                first = s
            }
            let resultsURL = dir.appendingPathComponent("results.jsonl")
            let data = fm.fileExists(atPath: resultsURL.path) ? try Data(contentsOf: resultsURL) : Data()
            let parsed = try parse(data, resultsURL.path)
            for (r, line) in parsed {
                let i = index(r)
                if let other = owner[i] {
                    throw ClassifierError("image \(i) is in both \(other.path) and \(dir.path); shards must not overlap")
                }
                owner[i] = dir
                lines.append((i, line, r))
            }
            counts.append(parsed.count)
            let summaryURL = dir.appendingPathComponent("summary.json")
            if fm.fileExists(atPath: summaryURL.path) {
                do { summaries.append(try decoder.decode(I.self, from: try Data(contentsOf: summaryURL))) } catch {
                    throw ClassifierError("\(summaryURL.path): unreadable summary (\(error))")
                }
            }
        }
        lines.sort { $0.index < $1.index }

        // The output folder: a new run, never an existing one (nor one of the inputs).
        let settingsURL = out.appendingPathComponent("settings.json"), resultsURL = out.appendingPathComponent("results.jsonl")
        let summaryURL = out.appendingPathComponent("summary.json")
        for url in [settingsURL, resultsURL, summaryURL] where fm.fileExists(atPath: url.path) {
            throw ClassifierError("\(url.path) exists; merge writes a new run folder (use another \(Setting.runFolder))")
        }
        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(out.path): cannot create the run folder: \(error.localizedDescription)")
        }
        try first!.encoded().write(to: settingsURL, options: .atomic)
        var joined = Data()
        for l in lines { joined.append(l.line) }
        try joined.write(to: resultsURL, options: .atomic)
        let present = Set(owner.keys)
        let missing = (0..<((lines.last?.index ?? -1) + 1)).filter { !present.contains($0) }
        return MergedShards(settings: first!, records: lines.map(\.record), counts: counts, missing: missing,
                            summaries: summaries, summaryURL: summaryURL)
    }
}
