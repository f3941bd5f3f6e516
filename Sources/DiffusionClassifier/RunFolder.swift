import NeuralNetworks
import Foundation

/// Settings that decide a run folder's results (`settings.json`). The default implementations
/// write the JSON every run folder uses (snake_case keys, sorted, pretty-printed) and compare
/// settings as JSON values.
public protocol RunSettings: Codable {
    func encoded() throws -> Data
    static func decode(_ data: Data) throws -> Self
    /// Human-readable differences ("seed: 3 -> 4"), empty when the settings are equal.
    func differences(from other: Self) throws -> [String]
}

extension RunSettings {
    /// JSON with snake_case keys, sorted, pretty-printed.
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public static func decode(_ data: Data) throws -> Self {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(Self.self, from: data)
    }

    /// "key: old -> new" for each setting that differs (compared as JSON values).
    public func differences(from other: Self) throws -> [String] {
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
