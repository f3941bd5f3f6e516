import Foundation
import NeuralNetworks

/// The kinds of run folder, recorded in `settings.json` as `kind`.
///
/// Folders written before the key existed have no `kind`; they are read as the kind their keys
/// show (`RunKind.inferred`): robustness settings have `attacks` and `eps_text`, evaluation
/// settings `method` (with `replay_of` for a replay). Such a folder resumes unchanged: its
/// `settings.json` is never rewritten, and `kind` is not one of the compared settings. A folder
/// written now has the key, so a kind added later needs no inference.
public enum RunKind: String, Codable, CaseIterable, Sendable {
    /// `diffclass eval`: one `ImageRecord` per image.
    case eval
    /// `diffclass replay`: an eval folder whose errors came from a recorded run.
    case replay
    /// `diffclass robust`: one `RobustRecord` per image.
    case robust

    /// The kind recorded in (or, for older folders, inferred from) a `settings.json` object.
    public static func of(settings json: [String: Any]) -> RunKind? {
        if let name = json["kind"] as? String { return RunKind(rawValue: name) }
        return inferred(from: json)
    }

    /// The kind of a `settings.json` written before `kind` was recorded.
    public static func inferred(from json: [String: Any]) -> RunKind? {
        if json["attacks"] != nil && json["eps_text"] != nil { return .robust }
        if json["method"] != nil { return json["replay_of"] != nil ? .replay : .eval }
        return nil
    }

    /// The kind of the run folder at `directory`; nil without a readable `settings.json` of a
    /// known kind.
    public static func of(_ directory: URL) -> RunKind? {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent(RunFiles.settings)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return of(settings: object)
    }
}

/// Settings that decide a run folder's results (`settings.json`). The default implementations
/// write the JSON every run folder uses (snake_case keys, sorted, pretty-printed) and compare
/// settings as JSON values.
public protocol RunSettings: Codable {
    /// The kind of folder these settings make (recorded as `kind`).
    var kind: RunKind { get }
    /// The kinds of folder whose `settings.json` holds these settings.
    static var kinds: Set<RunKind> { get }
    func encoded() throws -> Data
    static func decode(_ data: Data) throws -> Self
    /// Human-readable differences ("seed: 3 -> 4"), empty when the settings are equal.
    func differences(from other: Self) throws -> [String]
}

extension RunSettings {
    /// JSON with snake_case keys, sorted, pretty-printed (without `kind`: what `summary.json`
    /// embeds and what `differences` compares).
    public func encoded() throws -> Data {
        try RunFiles.encoder(pretty: true).encode(self)
    }

    /// `settings.json`: `encoded()` with the folder's `kind` among the sorted keys.
    public func folderData() throws -> Data {
        try RunFiles.encoder(pretty: true).encode(KindedSettings(kind: kind, settings: self))
    }

    public static func decode(_ data: Data) throws -> Self {
        try RunFiles.decoder.decode(Self.self, from: data)
    }

    /// "key: old -> new" for each setting that differs (compared as JSON values).
    public func differences(from other: Self) throws -> [String] { try jsonDifferences(from: other) }

    /// The default `differences`: every key compared as JSON values.
    public func jsonDifferences(from other: Self) throws -> [String] {
        func dict(_ s: Self) throws -> [String: Any] {
            (try JSONSerialization.jsonObject(with: try s.encoded()) as? [String: Any]) ?? [:]
        }
        let a = try dict(other), b = try dict(self)
        return Set(a.keys).union(b.keys).sorted().compactMap { k in
            let x = a[k].map { "\($0)" } ?? "null", y = b[k].map { "\($0)" } ?? "null"
            return x == y ? nil : "\(k): \(x) -> \(y)"
        }
    }
}

/// The settings with `kind` written into the same JSON object.
private struct KindedSettings<S: Encodable>: Encodable {
    let kind: RunKind
    let settings: S
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    func encode(to encoder: Encoder) throws {
        try settings.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(kind, forKey: Key(stringValue: "kind"))
    }
}

/// One line of a run folder's `results.jsonl`: the outcome of one item (an image), by index.
/// The default implementations read and write compact JSON with snake_case keys, sorted.
public protocol RunRecord: Codable {
    var index: Int { get }
    /// What a line is, in errors ("result record").
    static var recordName: String { get }
    /// One JSON line, newline-terminated.
    func line() throws -> Data
    static func parse(_ line: Data) throws -> Self
}

extension RunRecord {
    public func line() throws -> Data {
        var data = try RunFiles.encoder(pretty: false).encode(self)
        data.append(0x0A)
        return data
    }

    public static func parse(_ line: Data) throws -> Self { try RunFiles.decoder.decode(Self.self, from: line) }
}

/// The file names and JSON conventions every run folder shares.
enum RunFiles {
    static let settings = "settings.json", results = "results.jsonl", summary = "summary.json"

    static func encoder(pretty: Bool) -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    /// Writes `value` as pretty JSON with snake_case keys, sorted, atomically.
    static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        try encoder(pretty: true).encode(value).write(to: url, options: .atomic)
    }
}

/// A run folder: `settings.json` (what decides the results, and the folder's `kind`),
/// `results.jsonl` (one line per finished item, appended as each finishes), `summary.json`
/// (rewritten at the end of each session). What every kind shares lives here:
///
/// - opening: a new folder gets `settings.json`; an existing one must hold equal settings of
///   the same kind (then it resumes), else it is refused, naming the differences;
/// - resuming: `completedRecords` cuts an unterminated last line (a run killed mid-write) off
///   the file, so appending continues cleanly, and returns the finished records;
/// - running: `complete` produces the missing records and appends each as it finishes;
/// - reading: `readSettings`, `readRecords` (for replays, reuse, reports; nothing is modified);
/// - merging: `merge` joins shard folders of equal settings.
///
/// A new kind of run defines its settings (`RunSettings`, with a new `RunKind`) and its record
/// (`RunRecord`) and gets all of this as `RunFolder<ItsSettings, ItsRecord>`.
public struct RunFolder<Settings: RunSettings, Record: RunRecord> {
    public let directory: URL

    public init(_ directory: URL) { self.directory = directory }

    public var settingsURL: URL { directory.appendingPathComponent(RunFiles.settings) }
    public var resultsURL: URL { directory.appendingPathComponent(RunFiles.results) }
    public var summaryURL: URL { directory.appendingPathComponent(RunFiles.summary) }

    /// Creates the folder if needed and locks it (`RunFolderLock`: a folder another process is
    /// writing is refused, naming its pid); writes `settings.json`, or checks that an existing one
    /// is of the same kind with equal settings (else refused, naming the kinds or the differences).
    /// Keep the returned lock while writing the folder.
    @discardableResult
    public func open(settings: Settings) throws -> RunFolderLock {
        let fm = FileManager.default
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(directory.path): cannot create the run folder: \(error.localizedDescription)")
        }
        let lock = try RunFolderLock.acquire(directory)
        if fm.fileExists(atPath: settingsURL.path) {
            let old: Settings
            let recorded: RunKind?
            do {
                let data = try Data(contentsOf: settingsURL)
                recorded = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]).flatMap { RunKind.of(settings: $0) }
                if let recorded, recorded != settings.kind {
                    throw ClassifierError("it holds a run of kind \(recorded.rawValue), not \(settings.kind.rawValue)")
                }
                old = try Settings.decode(data)
            } catch {
                throw ClassifierError("\(settingsURL.path): unreadable settings (\(error)); use another \(Setting.runFolder)")
            }
            let diff = try settings.differences(from: old)
            guard diff.isEmpty else {
                throw ClassifierError("\(settingsURL.path): this run folder was made with different settings "
                    + "(\(diff.joined(separator: "; "))); rerun with the same settings to resume, or use another \(Setting.runFolder)")
            }
        } else {
            if fm.fileExists(atPath: resultsURL.path) {
                throw ClassifierError("\(resultsURL.path) exists without settings.json; use another \(Setting.runFolder)")
            }
            do { try settings.folderData().write(to: settingsURL, options: .atomic) } catch {
                throw ClassifierError("\(settingsURL.path): cannot write (\(Self.reason(error))); nothing was written")
            }
        }
        return lock
    }

    /// The system's reason for a failed write ("No space left on device", "File too large").
    static func reason(_ error: Error) -> String {
        let e = error as NSError
        if let underlying = e.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if e.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(e.code))) }
        return e.localizedDescription
    }

    /// The settings of an existing folder (read only). Errors name the folder: no settings, a
    /// folder of another kind, unreadable settings.
    public func readSettings() throws -> Settings {
        guard let data = try? Data(contentsOf: settingsURL) else {
            throw ClassifierError("\(directory.path): no settings.json (not a run folder)")
        }
        let kind = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]).flatMap { RunKind.of(settings: $0) }
        if let kind, !Settings.kinds.contains(kind) {
            let wanted = Settings.kinds.map(\.rawValue).sorted().joined(separator: " or ")
            throw ClassifierError("\(directory.path): holds a run of kind \(kind.rawValue), not \(wanted)")
        }
        do { return try Settings.decode(data) } catch {
            throw ClassifierError("\(settingsURL.path): cannot read the run's settings (\(error))")
        }
    }

    /// The complete lines of `results.jsonl` (empty when it does not exist), cutting an
    /// unterminated last line off the file so appending continues cleanly.
    func completeResultsData() throws -> Data {
        guard FileManager.default.fileExists(atPath: resultsURL.path) else { return Data() }
        var data = try Data(contentsOf: resultsURL)
        if let last = data.last, last != 0x0A {
            let keep = (data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
            data = data.prefix(keep)
            let handle = try FileHandle(forWritingTo: resultsURL)
            try handle.truncate(atOffset: UInt64(keep))
            try handle.close()
        }
        return data
    }

    /// The finished records, by index (for resuming: cuts an unterminated last line off).
    public func completedRecords() throws -> [Int: Record] {
        var records: [Int: Record] = [:]
        for (r, _) in try Self.parseResults(try completeResultsData(), path: resultsURL.path) { records[r.index] = r }
        return records
    }

    /// The records of `results.jsonl`, read only, and the indices in file order. An unterminated
    /// last line is left out.
    public func readRecords() throws -> (records: [Int: Record], order: [Int]) {
        let data: Data
        do { data = try Data(contentsOf: resultsURL) } catch { throw ClassifierError("\(resultsURL.path): cannot read (no results yet?)") }
        var records: [Int: Record] = [:]
        var order: [Int] = []
        for (r, _) in try Self.parseResults(data, path: resultsURL.path) where records[r.index] == nil {
            records[r.index] = r
            order.append(r.index)
        }
        return (records, order)
    }

    /// The records of `results.jsonl` text, each with its line's bytes (newline included), in
    /// file order; an unterminated last line (a run killed mid-write) is left out. A line that
    /// does not decode, or repeats an index of an earlier line, is an error naming `path` and the
    /// line number (a folder is never read with a line silently dropped or counted twice).
    public static func parseResults(_ data: Data, path: String) throws -> [(record: Record, line: Data)] {
        let complete = data.last == 0x0A ? data : data.prefix((data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? data.startIndex)
        var out: [(record: Record, line: Data)] = []
        var lineOf: [Int: Int] = [:]
        for (n, line) in complete.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            var bytes = Data(line)
            let record: Record
            do { record = try Record.parse(bytes) } catch {
                throw ClassifierError("\(path): line \(n + 1) is not a \(Record.recordName) (\(error)); "
                    + "the file is damaged: remove that line (and any after it) to rerun those items")
            }
            if let first = lineOf[record.index] {
                throw ClassifierError("\(path): line \(n + 1) repeats item \(record.index) of line \(first); "
                    + "the file was written by two runs at once or edited: remove one of the two lines")
            }
            lineOf[record.index] = n + 1
            bytes.append(0x0A)
            out.append((record, bytes))
        }
        return out
    }

    /// Produces the record of each of `indices` not yet finished, appending its line as soon as
    /// it is produced (`sync`: also forcing it to disk) and reporting it to `finished` with the
    /// records so far; returns the records of `indices` in order.
    ///
    /// Before anything runs, every finished record is given to `check`, which returns what is
    /// wrong with it for this run (an index outside the data, a label that is not the data's),
    /// or nil; a problem is an error naming the file and the item, and nothing is appended.
    ///
    /// With a `batcher`, several records are produced at once on its image threads (one running
    /// at a time; `CrossImageBatcher.run`) and the lines are still appended in the order of
    /// `indices`, each as soon as those before it are written.
    public func complete(_ indices: [Int], sync: Bool = false, batcher: CrossImageBatcher? = nil,
                         check: (Record) -> String? = { _ in nil }, produce: (Int) throws -> Record,
                         finished: (Record, [Int: Record]) throws -> Void = { _, _ in }) throws -> [Record] {
        var done = try completedRecords()
        for index in done.keys.sorted() {
            if let problem = check(done[index]!) {
                throw ClassifierError("\(resultsURL.path): the line of item \(index) \(problem); the folder holds results of other "
                    + "data or was edited: use another \(Setting.runFolder), or remove that line to rerun the item")
            }
        }
        if !FileManager.default.fileExists(atPath: resultsURL.path) {
            _ = FileManager.default.createFile(atPath: resultsURL.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: resultsURL)
        defer { try? handle.close() }
        try handle.seekToEnd()
        func append(_ record: Record, _ i: Int) throws {
            do { try handle.write(contentsOf: try record.line()) } catch {
                throw ClassifierError("\(resultsURL.path): cannot append the line of item \(i) (\(Self.reason(error))); "
                    + "the finished lines are kept: free space and rerun to resume")
            }
            if sync { try? handle.synchronize() }
            done[i] = record
            try finished(record, done)
        }
        if let batcher {
            let todo = indices.filter { done[$0] == nil }
            var ready: [Int: Record] = [:]
            var written = 0
            try batcher.run(todo.count) { j in
                ready[j] = try produce(todo[j])
                while let r = ready.removeValue(forKey: written) {
                    try append(r, todo[written])
                    written += 1
                }
            }
        } else {
            for i in indices where done[i] == nil { try append(try produce(i), i) }
        }
        return indices.compactMap { done[$0] }
    }

    /// The class names `summary.json` records (`class_names`), if any.
    public func recordedClassNames() -> [String]? {
        guard let data = try? Data(contentsOf: summaryURL),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["class_names"] as? [String]
    }

    /// Writes `summary.json` (pretty, sorted, snake_case keys, atomically).
    public func writeSummary<T: Encodable>(_ summary: T) throws {
        try RunFiles.writeJSON(summary, to: summaryURL)
    }
}

/// The joined shards of a merge (`RunFolder.merge`): what each kind of run needs to write its own
/// summary.
public struct MergedShards<Settings: RunSettings, Record: RunRecord, Info: Decodable> {
    public let settings: Settings
    /// Every shard's records, sorted by index.
    public let records: [Record]
    /// Records per input folder, in the order given.
    public let counts: [Int]
    /// Indices of the run that no shard has (a shard missing or unfinished): below the run's
    /// image count where the shards record it, else below the largest merged index.
    public let missing: [Int]
    /// The run's image count the shards record (nil when they do not, or disagree).
    public let runImages: Int?
    /// The parts of each shard's `summary.json` (shards without one are skipped), in order.
    public let summaries: [Info]
    /// The merged folder; the caller writes its summary.
    public let folder: RunFolder<Settings, Record>
}

extension RunFolder {
    /// Joins shard folders of equal settings into the new run folder `out`, for every kind
    /// alike: `settings.json` copied (with `kind`), `results.jsonl` = every shard's complete
    /// lines, byte for byte, sorted by index; the caller writes the summary from the returned
    /// parts (`Info`: what it reuses of each shard's `summary.json`). Refused: no folders, a
    /// folder without `settings.json` or of another kind, settings that differ (naming both
    /// folders and the differences), an index in two shards (naming both), an `out` that already
    /// holds a run. An unterminated last line (a shard killed mid-write) is left out, as a resume
    /// would. `runImages` gives the run's image count from the shards' summaries (nil: unknown);
    /// indices of the run that no shard has are refused before anything is written unless
    /// `allowPartial`, and reported in `missing` otherwise.
    public static func merge<Info: Decodable>(_ shards: [URL], into out: URL, summary: Info.Type, allowPartial: Bool = true,
                                              runImages: ([Info]) -> Int? = { _ in nil }) throws -> MergedShards<Settings, Record, Info> {
        guard !shards.isEmpty else { throw ClassifierError("merge: no run folders given") }
        let fm = FileManager.default
        var first: Settings?
        var lines: [(index: Int, line: Data, record: Record)] = []
        var owner: [Int: URL] = [:]
        var counts: [Int] = []
        var summaries: [Info] = []
        for dir in shards {
            let shard = RunFolder(dir)
            guard fm.fileExists(atPath: shard.settingsURL.path) else { throw ClassifierError("\(dir.path): no settings.json (not a run folder)") }
            let s = try shard.readSettings()
            if let first {
                let diff = try s.differences(from: first)
                guard diff.isEmpty else {
                    throw ClassifierError("\(shards[0].path) and \(dir.path) have different settings "
                        + "(\(diff.joined(separator: "; "))); only runs of equal settings can be merged")
                }
            } else {
                first = s
            }
            let data = fm.fileExists(atPath: shard.resultsURL.path) ? try Data(contentsOf: shard.resultsURL) : Data()
            let parsed = try parseResults(data, path: shard.resultsURL.path)
            for (r, line) in parsed {
                if let other = owner[r.index] {
                    throw ClassifierError("image \(r.index) is in both \(other.path) and \(dir.path); shards must not overlap")
                }
                owner[r.index] = dir
                lines.append((r.index, line, r))
            }
            counts.append(parsed.count)
            if fm.fileExists(atPath: shard.summaryURL.path) {
                do { summaries.append(try RunFiles.decoder.decode(Info.self, from: try Data(contentsOf: shard.summaryURL))) } catch {
                    throw ClassifierError("\(shard.summaryURL.path): unreadable summary (\(error))")
                }
            }
        }
        lines.sort { $0.index < $1.index }
        // The output folder: a new run, never an existing one (nor one of the inputs).
        let merged = RunFolder(out)
        for url in [merged.settingsURL, merged.resultsURL, merged.summaryURL] where fm.fileExists(atPath: url.path) {
            throw ClassifierError("\(url.path) exists; merge writes a new run folder (use another \(Setting.runFolder))")
        }
        let planned = runImages(summaries)
        let present = Set(owner.keys)
        let missing = (0..<Swift.max(planned ?? 0, (lines.last?.index ?? -1) + 1)).filter { !present.contains($0) }
        if !allowPartial, !missing.isEmpty {
            let shown = missing.prefix(10).map(String.init).joined(separator: ", ") + (missing.count > 10 ? ", ..." : "")
            let of = planned.map { "the run's \($0)" } ?? "the \((lines.last?.index ?? -1) + 1) up to the largest index"
            throw ClassifierError("merge: \(missing.count) of \(of) images are in no shard (\(shown)): a shard is unfinished or "
                + "not given; finish it (a rerun resumes) and merge again, or merge what there is with --partial")
        }

        do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(out.path): cannot create the run folder: \(error.localizedDescription)")
        }
        let lock = try RunFolderLock.acquire(out)
        defer { lock.removeFile() }
        for url in [merged.settingsURL, merged.resultsURL, merged.summaryURL] where fm.fileExists(atPath: url.path) {
            throw ClassifierError("\(url.path) exists; merge writes a new run folder (use another \(Setting.runFolder))")
        }
        try first!.folderData().write(to: merged.settingsURL, options: .atomic)
        var joined = Data()
        for l in lines { joined.append(l.line) }
        try joined.write(to: merged.resultsURL, options: .atomic)
        return MergedShards(settings: first!, records: lines.map(\.record), counts: counts, missing: missing, runImages: planned,
                            summaries: summaries, folder: merged)
    }
}

/// An evaluation run folder (`eval`, `replay`): `EvaluationSettings` and `ImageRecord`s.
public typealias EvaluationFolder = RunFolder<EvaluationSettings, ImageRecord>
/// A robustness run folder (`robust`): `RobustnessSettings` and `RobustRecord`s.
public typealias RobustnessFolder = RunFolder<RobustnessSettings, RobustRecord>

extension EvaluationSettings: RunSettings {
    public var kind: RunKind { replayOf == nil ? .eval : .replay }
    public static var kinds: Set<RunKind> { [.eval, .replay] }

    /// As JSON values, except that a folder made before `model_hash` was recorded (`other`
    /// without one) is compared without it, so it resumes as before.
    public func differences(from other: EvaluationSettings) throws -> [String] {
        var mine = self
        if other.modelHash == nil { mine.modelHash = nil }
        return try mine.jsonDifferences(from: other)
    }
}

extension RobustnessSettings {
    public var kind: RunKind { .robust }
    public static var kinds: Set<RunKind> { [.robust] }
}

extension ImageRecord: RunRecord {
    public static var recordName: String { "result record" }
}

extension RobustRecord: RunRecord {
    public static var recordName: String { "robustness record" }
}
