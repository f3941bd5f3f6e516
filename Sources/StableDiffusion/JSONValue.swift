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
        case let .number(n): return n == n.rounded() ? "\(Int(n))" : "\(n)"
        case let .string(s): return "\"\(s)\""
        case let .array(a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object: return "{...}"
        }
    }

    /// An integer, or a list of integers, as per-block values (`count` copies of a single one).
    func intsPerBlock(_ count: Int) -> [Int]? {
        switch self {
        case let .number(n): return Array(repeating: Int(n), count: count)
        case let .array(a):
            let ints = a.compactMap { v -> Int? in if case let .number(n) = v { return Int(n) } else { return nil } }
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
