import Foundation

/// The parsed and validated header of a safetensors file.
struct SafetensorsHeader {
    /// Header length N (the JSON text, padding included).
    var headerLength: Int
    var metadata: [String: String]
    var entries: [String: SafetensorsTensorInfo]

    /// Parses and validates the first bytes of a safetensors file against the whole file's size.
    /// `bytes` is the whole file. Applies the reference reader's checks in its order: length
    /// prefix, header limits, UTF-8, JSON, entry structure, offsets and sizes (sorted by
    /// offset), and finally the total file length.
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> SafetensorsHeader {
        let fileSize = bytes.count
        guard fileSize >= 8, let base = bytes.baseAddress else {
            throw SafetensorsError.fileTooSmall(path: path, fileSize: fileSize)
        }
        let n64 = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard n64 <= UInt64(Safetensors.maximumHeaderLength) else {
            throw SafetensorsError.headerTooLarge(path: path, headerLength: n64)
        }
        let n = Int(n64)
        guard n <= fileSize - 8 else {
            throw SafetensorsError.headerBeyondFile(path: path, headerLength: n, fileSize: fileSize)
        }
        let text = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self) + 8, count: n)
        if let bad = firstInvalidUTF8(text) {
            throw SafetensorsError.invalidUTF8(path: path, offset: bad)
        }
        var parser = HeaderJSONParser(bytes: text, path: path)
        let root = try parser.parseDocument()

        guard case .object(let members) = root else {
            throw SafetensorsError.headerNotObject(path: path)
        }
        var metadata: [String: String] = [:]
        var list: [(name: String, info: SafetensorsTensorInfo)] = []
        list.reserveCapacity(members.count)
        for (key, value) in members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, path: path)
            } else {
                list.append((key, try parseEntry(name: key, value, path: path)))
            }
        }

        // Sorted by (begin, end), the entries must tile [0, dataLength) exactly.
        var order = list.indices.map { (begin: list[$0].info.begin, end: list[$0].info.end, index: $0) }
        order.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var start = 0
        for (position, (begin, end, index)) in order.enumerated() {
            let (name, info) = list[index]
            if begin != start || end < begin {
                let problem: SafetensorsError.OffsetProblem =
                    end < begin ? .beginAfterEnd
                    : position == 0 ? .doesNotStartAtZero
                    : begin > start ? .gap : .overlap
                throw SafetensorsError.invalidOffsets(path: path, tensor: name, begin: begin, end: end,
                                                      expectedBegin: start, problem: problem)
            }
            start = end
            var elements = 1
            for d in info.shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw SafetensorsError.sizeOverflow(path: path, tensor: name, dtype: info.dtype, shape: info.shape)
                }
                elements = product
            }
            let (bits, overflow) = elements.multipliedReportingOverflow(by: info.dtype.bitSize)
            guard !overflow else {
                throw SafetensorsError.sizeOverflow(path: path, tensor: name, dtype: info.dtype, shape: info.shape)
            }
            guard bits % 8 == 0 else {
                throw SafetensorsError.misalignedSize(path: path, tensor: name, dtype: info.dtype, shape: info.shape)
            }
            guard end - begin == bits / 8 else {
                throw SafetensorsError.sizeMismatch(path: path, tensor: name, dtype: info.dtype, shape: info.shape,
                                                    byteCount: end - begin, expectedByteCount: bits / 8)
            }
        }
        // start <= Int.max and 8 + n <= fileSize, so only this addition can overflow.
        let (expected, overflow) = start.addingReportingOverflow(8 + n)
        guard !overflow, expected == fileSize else {
            throw SafetensorsError.fileSizeMismatch(path: path, fileSize: fileSize,
                                                    expectedSize: overflow ? Int.max : expected)
        }
        let entries = Dictionary(list, uniquingKeysWith: { first, _ in first })  // keys are unique: the parser checked
        return SafetensorsHeader(headerLength: n, metadata: metadata, entries: entries)
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        switch value {
        case .null:
            return [:]   // the reference reader takes `null` as "no metadata"
        case .object(let members):
            var result: [String: String] = [:]
            for (key, item) in members {
                guard case .string(let s) = item else {
                    throw SafetensorsError.invalidMetadata(
                        path: path, reason: "value of '\(key)' is \(item.kindName), not a string")
                }
                result[key] = s
            }
            return result
        default:
            throw SafetensorsError.invalidMetadata(path: path, reason: "is \(value.kindName), not an object of strings")
        }
    }

    private static func parseEntry(name: String, _ value: JSONValue, path: String) throws -> SafetensorsTensorInfo {
        guard case .object(let members) = value else {
            throw SafetensorsError.invalidEntry(path: path, tensor: name, reason: "entry is \(value.kindName), not an object")
        }
        var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
        for (key, item) in members {
            switch key {
            case "dtype": dtypeValue = item
            case "shape": shapeValue = item
            case "data_offsets": offsetsValue = item
            default:
                throw SafetensorsError.invalidEntry(
                    path: path, tensor: name,
                    reason: "unexpected key '\(key)' (an entry has exactly dtype, shape and data_offsets)")
            }
        }
        guard let dtypeValue, let shapeValue, let offsetsValue else {
            let missing = [("dtype", dtypeValue), ("shape", shapeValue), ("data_offsets", offsetsValue)]
                .filter { $0.1 == nil }.map { $0.0 }.joined(separator: ", ")
            throw SafetensorsError.invalidEntry(path: path, tensor: name, reason: "missing \(missing)")
        }
        guard case .string(let dtypeName) = dtypeValue else {
            throw SafetensorsError.invalidEntry(path: path, tensor: name,
                                                reason: "dtype is \(dtypeValue.kindName), not a string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw SafetensorsError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard case .array(let shapeItems) = shapeValue else {
            throw SafetensorsError.invalidEntry(path: path, tensor: name,
                                                reason: "shape is \(shapeValue.kindName), not an array")
        }
        let shape = try shapeItems.map { try integer($0, field: "shape", tensor: name, path: path) }
        guard case .array(let offsetItems) = offsetsValue, offsetItems.count == 2 else {
            throw SafetensorsError.invalidEntry(path: path, tensor: name,
                                                reason: "data_offsets is not an array of two integers")
        }
        let begin = try integer(offsetItems[0], field: "data_offsets", tensor: name, path: path)
        let end = try integer(offsetItems[1], field: "data_offsets", tensor: name, path: path)
        // Stored as a half-open pair checked later; Range would trap on begin > end.
        return SafetensorsTensorInfo(dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// A JSON number that is a non-negative integer written without fraction or exponent (as
    /// serde's `usize` requires) and fits in Int.
    private static func integer(_ value: JSONValue, field: String, tensor: String, path: String) throws -> Int {
        guard case .number(let text) = value else {
            throw SafetensorsError.invalidEntry(path: path, tensor: tensor,
                                                reason: "\(field) holds \(value.kindName), not an integer")
        }
        var digits = Substring(text)
        var negative = false
        if digits.first == "-" { negative = true; digits = digits.dropFirst() }
        guard !digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }),
              let magnitude = Int(digits), !negative || magnitude == 0 else {
            throw SafetensorsError.invalidInteger(path: path, tensor: tensor, field: field, text: text)
        }
        return magnitude
    }

    /// Index of the first byte that starts an invalid UTF-8 sequence (overlong forms, surrogates
    /// and code points over U+10FFFF are invalid, as in Rust's `str::from_utf8`), or nil.
    static func firstInvalidUTF8(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = b.count
        var i = 0
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; high = 0x9F
            case 0xF0: need = 3; low = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; high = 0x8F
            default: return i
            }
            guard n - i > need, b[i + 1] >= low, b[i + 1] <= high else { return i }
            var k = 2
            while k <= need {
                guard b[i + k] & 0xC0 == 0x80 else { return i }
                k += 1
            }
            i += need + 1
        }
        return nil
    }
}

/// A JSON value; objects keep their members in file order.
indirect enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's text, checked against the JSON grammar.
    case number(String)
    case bool(Bool)
    case null

    var kindName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number(let t): return "the number \(t)"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        }
    }
}

/// A small strict JSON parser (RFC 8259, as serde_json reads it) over already UTF-8-validated
/// bytes. Unlike Foundation's decoders it rejects duplicate keys in any object. Nesting is limited
/// to 128 levels (serde_json's default) so hostile input cannot exhaust the stack.
struct HeaderJSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let path: String
    var position = 0
    var depth = 0
    static let maximumDepth = 128

    init(bytes: UnsafeBufferPointer<UInt8>, path: String) {
        self.bytes = bytes
        self.path = path
    }

    mutating func parseDocument() throws -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw failure("trailing characters after the JSON value") }
        return value
    }

    private func failure(_ reason: String) -> SafetensorsError {
        .invalidJSON(path: path, offset: position, reason: reason)
    }

    private var atEnd: Bool { position >= bytes.count }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws -> JSONValue {
        guard !atEnd else { throw failure("unexpected end of header") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character")
        }
    }

    private mutating func expectLiteral(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard bytes.count - position >= count else { throw failure("invalid literal") }
        let w = word.utf8Start
        for k in 0..<count where bytes[position + k] != w[k] {
            throw failure("invalid literal")
        }
        position += count
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw failure("nesting deeper than \(Self.maximumDepth) levels") }
    }

    private mutating func parseObject() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        var seen = Set<String>()
        skipWhitespace()
        if !atEnd, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard !atEnd, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let key = try parseString()
            // Small objects (every tensor entry) are checked by a scan, larger ones with a set.
            if members.count < 16 {
                if members.contains(where: { $0.key == key }) {
                    throw SafetensorsError.duplicateKey(path: path, key: key)
                }
                if members.count == 15 { seen = Set(members.map(\.key) + [key]) }
            } else if !seen.insert(key).inserted {
                throw SafetensorsError.duplicateKey(path: path, key: key)
            }
            skipWhitespace()
            guard !atEnd, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            position += 1
            skipWhitespace()
            let value = try parseValue()
            members.append((key, value))
            skipWhitespace()
            guard !atEnd else { throw failure("unexpected end of header in an object") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw failure("expected ',' or '}'")
        }
    }

    private mutating func parseArray() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if !atEnd, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard !atEnd else { throw failure("unexpected end of header in an array") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw failure("expected ',' or ']'")
        }
    }

    private mutating func parseString() throws -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes.
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                position += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            guard c >= 0x20 else { throw failure("control character in a string") }
            position += 1
        }
        var out = Array(bytes[start..<position])
        while true {
            guard position < bytes.count else { throw failure("unterminated string") }
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                return String(decoding: out, as: UTF8.self)
            }
            guard c >= 0x20 else { throw failure("control character in a string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                position += 1
                continue
            }
            position += 1
            guard position < bytes.count else { throw failure("unterminated string") }
            let e = bytes[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else {
                        throw failure("lone leading surrogate in \\u escape")
                    }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw failure("invalid low surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw failure("lone trailing surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw failure("invalid \\u escape") }
                out.append(contentsOf: Character(u).utf8)
            default:
                position -= 1
                throw failure("invalid escape")
            }
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard bytes.count - position >= 4 else { throw failure("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw failure("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = position
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard !atEnd, isDigit(bytes[position]) else { throw failure("invalid number") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while !atEnd, isDigit(bytes[position]) { position += 1 }
        }
        if !atEnd, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard !atEnd, isDigit(bytes[position]) else { throw failure("invalid number") }
            while !atEnd, isDigit(bytes[position]) { position += 1 }
        }
        if !atEnd, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if !atEnd, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard !atEnd, isDigit(bytes[position]) else { throw failure("invalid number") }
            while !atEnd, isDigit(bytes[position]) { position += 1 }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self))
    }
}
