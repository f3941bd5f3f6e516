import Foundation
import TensorEngine

/// The safetensors checkpoint format (huggingface/safetensors): an 8-byte little-endian header
/// length N, N bytes of UTF-8 JSON describing each tensor (`{"dtype", "shape", "data_offsets"}`,
/// offsets relative to the data section) plus an optional `__metadata__` string map, then the raw
/// little-endian, row-major tensor data.
///
/// Read with `SafetensorsFile`, write with `Safetensors.write` or `Safetensors.encode`.
public enum Safetensors {
    /// The largest header length a reader accepts (the reference reader's limit).
    public static let maximumHeaderLength = 100_000_000

    /// The permutation that sorts `strings` by their UTF-8 bytes (as Rust orders `String`s), not
    /// by Swift's Unicode-aware `<`. Compares packed bytes with memcmp, so many names sort fast.
    static func utf8Order(_ strings: [String]) -> [Int] {
        var bytes: [UInt8] = []
        var spans: [(start: Int, count: Int)] = []
        spans.reserveCapacity(strings.count)
        for s in strings {
            let start = bytes.count
            bytes.append(contentsOf: s.utf8)
            spans.append((start, bytes.count - start))
        }
        var order = Array(0..<strings.count)
        bytes.withUnsafeBufferPointer { buffer in
            spans.withUnsafeBufferPointer { spans in
                order.sort { i, j in
                    let a = spans[i], b = spans[j]
                    let n = min(a.count, b.count)
                    if n > 0, let base = buffer.baseAddress {
                        let c = memcmp(base + a.start, base + b.start, n)
                        if c != 0 { return c < 0 }
                    }
                    return a.count < b.count
                }
            }
        }
        return order
    }
}

/// The element types the safetensors format defines (the reference's `Dtype`, same spellings).
/// Every one is accepted when validating a file; `SafetensorsFile.tensor(_:)` converts the common
/// ones to Float32 (see there).
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Size of one element in bits (4 and 6 for the sub-byte float formats).
    public var bitSize: Int {
        switch self {
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Whether `SafetensorsFile.tensor(_:)` can convert this type to Float32.
    public var convertsToFloat: Bool { scalarFormat != nil }

    /// The engine's name for this type, for the types it converts to Float32.
    public var scalarFormat: ScalarFormat? {
        switch self {
        case .f32: return .float32
        case .f16: return .float16
        case .bf16: return .bfloat16
        case .f64: return .float64
        case .bool: return .bool
        case .u8: return .uint8
        case .i8: return .int8
        case .i16: return .int16
        case .u16: return .uint16
        case .i32: return .int32
        case .u32: return .uint32
        case .i64: return .int64
        case .u64: return .uint64
        default: return nil
        }
    }

    /// Whether `SafetensorsFile.int64Values(_:)` can read this type.
    public var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return true
        default: return false
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Equatable, Sendable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    // Kept as a pair, not a Range, so an unvalidated `begin > end` cannot trap.
    let begin: Int
    let end: Int

    init(dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int) {
        self.dtype = dtype
        self.shape = shape
        self.begin = begin
        self.end = end
    }

    /// The tensor's bytes, relative to the start of the data section (after the header).
    public var dataOffsets: Range<Int> { begin..<end }
    /// Number of bytes of data.
    public var byteCount: Int { end - begin }
    /// Number of elements (the product of `shape`; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file, memory-mapped and validated on opening; tensors are converted on demand.
///
/// ```swift
/// let file = try SafetensorsFile(url: URL(fileURLWithPath: "unet.safetensors"))
/// for name in file.names { print(name, try file.info(name).shape) }
/// let w = try file.tensor("conv_in.weight")          // F32/F16/BF16/... -> Float32
/// ```
///
/// Validation matches the reference Rust reader's rules (`SafeTensors::read_metadata` in
/// huggingface/safetensors): an 8-byte little-endian header length N of at most 100,000,000;
/// 8 + N within the file; the header valid UTF-8 and valid JSON (whitespace, including the
/// writer's space padding, around the value is allowed); every dtype one the format defines;
/// shapes and offsets non-negative integers (no fraction or exponent); entries, sorted by
/// `(begin, end)`, tiling the data section from 0 with no gap or overlap and `begin <= end`;
/// each byte range exactly element count × dtype size (overflow-checked, whole bytes for
/// sub-byte types); and the file exactly 8 + N + the last end offset long. `__metadata__` must be
/// an object of strings (or `null`, which the reference also reads as "none").
///
/// Where it is stricter than the reference: a key repeated in any header object is an error
/// (serde keeps the last one silently); a tensor entry with keys other than `dtype`, `shape`,
/// `data_offsets` is an error (serde ignores them); numbers above Int.max are errors rather than
/// going on to an overflow check; names that Swift treats as equal (canonically equivalent
/// Unicode) count as duplicates. It does not check that data is aligned (readers must not assume
/// alignment; this one copies unaligned data), and it cannot guard against the file being
/// truncated by another process while mapped (the OS then signals SIGBUS, as with any mmap
/// reader). Multi-byte values are read as little-endian on any host.
public struct SafetensorsFile: Sendable {
    /// The file's location.
    public let url: URL
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    /// Tensor names, sorted by their UTF-8 bytes.
    public let names: [String]
    /// The header length N (the data section starts at byte 8 + N).
    public let headerLength: Int

    private let entries: [String: SafetensorsTensorInfo]
    private let data: Data
    private let path: String

    /// Memory-maps and validates the file. Throws `SafetensorsError` naming the file.
    public init(url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            // Mapping an empty file can fail on some systems; report it as too small.
            if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber,
               size.intValue == 0 {
                throw SafetensorsError.fileTooSmall(path: url.path, fileSize: 0)
            }
            throw SafetensorsError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data, url: url)
    }

    /// Validates a safetensors file already in memory; `url` names it in errors.
    public init(data: Data, url: URL) throws {
        let path = url.path
        let header = try data.withUnsafeBytes { try SafetensorsHeader.parse($0, path: path) }
        self.url = url
        self.path = path
        self.data = data
        self.metadata = header.metadata
        self.entries = header.entries
        self.headerLength = header.headerLength
        let keys = Array(header.entries.keys)
        self.names = Safetensors.utf8Order(keys).map { keys[$0] }
    }

    /// Whether the file holds a tensor of that name.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The dtype, shape and byte range of a tensor.
    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = entries[name] else { throw SafetensorsError.tensorNotFound(path: path, name: name) }
        return info
    }

    /// The tensor converted to Float32: F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8
    /// and BOOL (0 or 1) are converted; the 8-, 6- and 4-bit floats and C64 throw
    /// `unsupportedDType`. F64 and 64-bit integers are rounded to the nearest Float.
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        guard let format = info.dtype.scalarFormat else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype, requested: "Float32")
        }
        let offset = 8 + headerLength + info.begin
        return data.withUnsafeBytes { raw in
            Tensor(shape: info.shape, bytes: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + info.byteCount)]),
                   format: format)
        }
    }

    /// Throws `nonFinite` naming the tensor and its first NaN or infinite value (an F64 beyond
    /// Float32's range counts, as it converts to infinity). Integer and 8/6/4-bit tensors pass.
    /// Readers of weights and noise call it: one pass over the mapped bytes, nothing converted.
    public func checkFinite(_ name: String) throws {
        let info = try info(name)
        let count = info.elementCount, offset = 8 + headerLength + info.begin
        let bad: Int? = data.withUnsafeBytes { raw -> Int? in
            guard count > 0, let base = raw.baseAddress else { return nil }
            let p = base + offset
            switch info.dtype {
            case .f32:
                for i in 0..<count where p.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self) & 0x7F80_0000 == 0x7F80_0000 { return i }
            case .f16:
                for i in 0..<count where p.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self) & 0x7C00 == 0x7C00 { return i }
            case .bf16:
                for i in 0..<count where p.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self) & 0x7F80 == 0x7F80 { return i }
            case .f64:
                for i in 0..<count {
                    let x = Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)))
                    if !Float(x).isFinite { return i }
                }
            default: break
            }
            return nil
        }
        if let bad { throw SafetensorsError.nonFinite(path: path, tensor: name, index: bad) }
    }

    /// Every tensor, converted as `tensor(_:)` does.
    public func tensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names { result[name] = try tensor(name) }
        return result
    }

    /// An integer tensor's values in row-major order (token ids, class labels): BOOL, U8, I8,
    /// I16, U16, I32, U32, I64 and U64 (values above Int64.max throw `valueOutOfRange`).
    public func int64Values(_ name: String) throws -> [Int64] {
        let info = try info(name)
        guard info.dtype.isInteger else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype, requested: "Int64")
        }
        let count = info.elementCount
        let offset = 8 + headerLength + info.begin
        var firstOutOfRange: Int?
        let values = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { raw in
                guard count > 0, let base = raw.baseAddress, let dst = buffer.baseAddress else { return }
                firstOutOfRange = SafetensorsConversion.toInt64(from: base + offset, dtype: info.dtype,
                                                                count: count, into: dst)
            }
            initialized = count
        }
        if let index = firstOutOfRange {
            throw SafetensorsError.valueOutOfRange(path: path, tensor: name, index: index)
        }
        return values
    }

    /// Copies an F16 or BF16 tensor's values into `destination` bit for bit (no Float32 step, so
    /// nothing is rounded and no Float32 copy is made). The tensor's dtype must be
    /// `destination.format`'s and its element count `destination.count`; otherwise throws
    /// `unsupportedDType` naming the file and tensor.
    public func copyHalfBits(_ name: String, into destination: HalfTensor) throws {
        let info = try info(name)
        let wanted: SafetensorsDType = destination.format == .float16 ? .f16 : .bf16
        guard info.dtype == wanted else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtype, requested: wanted.rawValue)
        }
        precondition(info.elementCount == destination.count, "copyHalfBits: '\(name)' has \(info.elementCount) values, destination \(destination.count)")
        let offset = 8 + headerLength + info.begin
        data.withUnsafeBytes { raw in
            destination.assignBits(littleEndian: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + info.byteCount)]))
        }
    }

    /// The tensor's raw bytes (little-endian, row-major), copied out of the file.
    public func rawData(_ name: String) throws -> Data {
        let info = try info(name)
        let start = data.startIndex + 8 + headerLength + info.begin
        return Data(data[start..<(start + info.byteCount)])
    }
}

/// The integer conversion loop: unaligned little-endian loads from the mapped file, one pass.
/// (Float conversions are the engine's: `Tensor(shape:bytes:format:)`.)
enum SafetensorsConversion {
    /// Returns the index of the first value that does not fit in Int64 (U64 only), or nil.
    static func toInt64(from src: UnsafeRawPointer, dtype: SafetensorsDType, count n: Int,
                        into dst: UnsafeMutablePointer<Int64>) -> Int? {
        switch dtype {
        case .bool:
            for i in 0..<n { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        case .u8: integersToInt64(src, n, dst, UInt8.self)
        case .i8: integersToInt64(src, n, dst, Int8.self)
        case .i16: integersToInt64(src, n, dst, Int16.self)
        case .u16: integersToInt64(src, n, dst, UInt16.self)
        case .i32: integersToInt64(src, n, dst, Int32.self)
        case .u32: integersToInt64(src, n, dst, UInt32.self)
        case .i64: integersToInt64(src, n, dst, Int64.self)
        case .u64:
            var bad: Int?
            for i in 0..<n {
                let v = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))
                if v > UInt64(Int64.max), bad == nil { bad = i }
                dst[i] = Int64(truncatingIfNeeded: v)
            }
            return bad
        default:
            dst.initialize(repeating: 0, count: n)  // callers check `isInteger`
        }
        return nil
    }

    @inline(__always)
    private static func integersToInt64<T: FixedWidthInteger>(_ src: UnsafeRawPointer, _ n: Int,
                                                              _ dst: UnsafeMutablePointer<Int64>, _: T.Type) {
        let size = MemoryLayout<T>.size
        for i in 0..<n {
            dst[i] = Int64(T(littleEndian: src.loadUnaligned(fromByteOffset: i &* size, as: T.self)))
        }
    }
}
