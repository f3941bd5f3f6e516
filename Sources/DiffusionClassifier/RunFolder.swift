import Foundation

/// Settings that decide a run folder's results (`settings.json`).
public protocol RunSettings {
    func encoded() throws -> Data
    static func decode(_ data: Data) throws -> Self
    /// Human-readable differences ("seed: 3 -> 4"), empty when the settings are equal.
    func differences(from other: Self) throws -> [String]
}

/// The mechanics shared by run folders (`diffclass eval`, `diffclass robust`): `settings.json`
/// written once and checked on every rerun, and `results.jsonl` holding one line per finished
/// item, so a rerun resumes after the last complete line.
public enum RunFolder {
    /// Creates `directory` if needed; writes `settings.json`, or checks that an existing one
    /// equals `settings` (a different one is refused, naming the differences).
    public static func open<S: RunSettings>(_ directory: URL, settings: S, settingsURL: URL, resultsURL: URL) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ClassifierError("\(directory.path): cannot create the run folder: \(error.localizedDescription)")
        }
        if fm.fileExists(atPath: settingsURL.path) {
            let old: S
            do { old = try S.decode(try Data(contentsOf: settingsURL)) } catch {
                throw ClassifierError("\(settingsURL.path): unreadable settings (\(error)); use another --out")
            }
            let diff = try settings.differences(from: old)
            guard diff.isEmpty else {
                throw ClassifierError("\(settingsURL.path): this run folder was made with different settings "
                    + "(\(diff.joined(separator: "; "))); rerun with the same settings to resume, or use another --out")
            }
        } else {
            if fm.fileExists(atPath: resultsURL.path) {
                throw ClassifierError("\(resultsURL.path) exists without settings.json; use another --out")
            }
            try settings.encoded().write(to: settingsURL, options: .atomic)
        }
    }

    /// Writes `summary.json`: pretty, sorted, snake_case keys, atomically.
    public static func writeSummary<T: Encodable>(_ value: T, to url: URL) throws {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(value).write(to: url, options: .atomic)
    }

    /// The complete lines of `resultsURL` (empty when it does not exist). An unterminated last
    /// line, left by a run killed mid-write, is cut off the file so appending continues cleanly.
    public static func completeLines(_ resultsURL: URL) throws -> Data {
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
}

extension EvaluationSettings: RunSettings {}
