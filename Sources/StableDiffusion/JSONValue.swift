import Diffusion
import Foundation

/// Any JSON value, for config fields that are only checked (must be absent, null or a default)
/// and for fields diffusers accepts as either a number or a list.
enum JSONValue: Decodable, Equatable, CustomStringConvertible {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var description: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return "\(b)"
        case let .number(n): return Int(exactly: n).map(String.init) ?? "\(n)"
        case let .string(s): return "\"\(s)\""
        case let .array(a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object: return "{...}"
        }
    }

    /// The number as an Int when it is a whole number Int can hold (1e300, 2.5, NaN: nil).
    var integer: Int? { if case let .number(n) = self { return Int(exactly: n) } else { return nil } }

    /// An integer, or a list of integers, as per-block values (`count` copies of a single one);
    /// nil when a value is not a whole number Int can hold.
    func intsPerBlock(_ count: Int) -> [Int]? {
        switch self {
        case .number: return integer.map { Array(repeating: $0, count: count) }
        case let .array(a):
            let ints = a.compactMap(\.integer)
            return ints.count == a.count ? ints : nil
        default: return nil
        }
    }

    /// A boolean, or a list of booleans (per block).
    var bools: [Bool]? {
        switch self {
        case let .bool(b): return [b]
        case let .array(a):
            let bs = a.compactMap { v -> Bool? in if case let .bool(b) = v { return b } else { return nil } }
            return bs.count == a.count ? bs : nil
        default: return nil
        }
    }
}

/// A config.json read as JSON values, for parsers that check every field: typed reads into
/// settings (absent or null keeps the default) whose errors name the file and the key.
struct ConfigFields {
    let file: String
    let json: [String: JSONValue]

    init(_ data: Data, file: String) throws {
        self.file = file
        do { json = try JSONDecoder().decode([String: JSONValue].self, from: data) } catch {
            throw ConfigError(file: file, "not a JSON object: \(error)")
        }
    }

    func fail(_ message: String) -> ConfigError { ConfigError(file: file, message) }

    /// The key's value; nil when absent or null.
    func value(_ key: String) -> JSONValue? { json[key].flatMap { $0 == .null ? nil : $0 } }

    /// Refuses a `_class_name` other than `expected` (absent is fine).
    func requireClassName(_ expected: String) throws {
        if case let .string(name)? = json["_class_name"], name != expected {
            throw fail("_class_name is '\(name)', expected '\(expected)'")
        }
    }

    func int(_ key: String, _ v: inout Int) throws {
        guard let j = value(key) else { return }
        guard let n = j.integer else { throw fail("\(key) must be an integer, got \(j)") }
        v = n
    }

    func double(_ key: String, _ v: inout Double) throws {
        guard let j = value(key) else { return }
        guard case let .number(n) = j else { throw fail("\(key) must be a number, got \(j)") }
        v = n
    }

    func bool(_ key: String, _ v: inout Bool) throws {
        guard let j = value(key) else { return }
        guard case let .bool(b) = j else { throw fail("\(key) must be true or false, got \(j)") }
        v = b
    }

    /// A list of diffusers block names parsed into `BlockType`s, each one of `supported`.
    func blockTypes(_ key: String, _ v: inout [BlockType], what: String, supported: [BlockType]) throws {
        var names: [String] = []
        guard value(key) != nil else { return }
        try strings(key, &names)
        v = try names.map { name in
            switch BlockType.parse(name, what: what, supported: supported) {
            case .success(let t): return t
            case .failure(let e): throw fail(e.description)
            }
        }
    }

    func strings(_ key: String, _ v: inout [String]) throws {
        guard let j = value(key) else { return }
        guard case let .array(a) = j else { throw fail("\(key) must be a list of names, got \(j)") }
        v = try a.map { if case let .string(s) = $0 { return s }; throw fail("\(key) must be a list of names, got \(j)") }
    }
}
