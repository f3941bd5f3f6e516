import Foundation

/// Everything that can go wrong reading or writing a safetensors file. Every case carries the
/// file's path, and `description` starts with it: "path: problem".
public enum SafetensorsError: Error, Equatable, Sendable {
    /// How a tensor's `data_offsets` break the layout rule (entries sorted by offset must tile
    /// the data section from 0 with no gap and no overlap).
    public enum OffsetProblem: Equatable, Sendable {
        /// `begin > end`.
        case beginAfterEnd
        /// The first entry (sorted by offset) does not begin at 0.
        case doesNotStartAtZero
        /// The entry begins after the previous one ends.
        case gap
        /// The entry begins before the previous one ends.
        case overlap
    }

    /// The file could not be opened or mapped.
    case unreadable(path: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooSmall(path: String, fileSize: Int)
    /// The header length is over `Safetensors.maximumHeaderLength` (100,000,000).
    case headerTooLarge(path: String, headerLength: UInt64)
    /// 8 + header length is past the end of the file.
    case headerBeyondFile(path: String, headerLength: Int, fileSize: Int)
    /// The header is not valid UTF-8 (`offset` counts from the start of the header).
    case invalidUTF8(path: String, offset: Int)
    /// The header is not valid JSON (`offset` counts from the start of the header).
    case invalidJSON(path: String, offset: Int, reason: String)
    /// The header is valid JSON but not an object.
    case headerNotObject(path: String)
    /// A key appears twice in one JSON object (two tensors with one name, for instance).
    case duplicateKey(path: String, key: String)
    /// `__metadata__` is not an object whose values are all strings.
    case invalidMetadata(path: String, reason: String)
    /// A tensor entry is not an object with exactly `dtype`, `shape` and `data_offsets` of the
    /// right JSON types.
    case invalidEntry(path: String, tensor: String, reason: String)
    /// A number in `shape` or `data_offsets` is negative, not an integer, or too large.
    case invalidInteger(path: String, tensor: String, field: String, text: String)
    /// The dtype string is not one the format defines.
    case unknownDType(path: String, tensor: String, dtype: String)
    /// The entry's byte range breaks the contiguous layout; `expectedBegin` is where the
    /// previous entry (sorted by offset) ended.
    case invalidOffsets(path: String, tensor: String, begin: Int, end: Int, expectedBegin: Int,
                        problem: OffsetProblem)
    /// Element count times dtype size overflows.
    case sizeOverflow(path: String, tensor: String, dtype: SafetensorsDType, shape: [Int])
    /// A sub-byte dtype (F4, F6) whose element count does not fill whole bytes.
    case misalignedSize(path: String, tensor: String, dtype: SafetensorsDType, shape: [Int])
    /// The byte range does not hold exactly element count times dtype size bytes.
    case sizeMismatch(path: String, tensor: String, dtype: SafetensorsDType, shape: [Int],
                      byteCount: Int, expectedByteCount: Int)
    /// The file is not exactly 8 + header length + end of the last tensor long (trailing bytes
    /// or truncated data).
    case fileSizeMismatch(path: String, fileSize: Int, expectedSize: Int)
    /// No tensor of that name in the file.
    case tensorNotFound(path: String, name: String)
    /// The tensor's dtype cannot be converted to what was asked for.
    case unsupportedDType(path: String, tensor: String, dtype: SafetensorsDType, requested: String)
    /// An integer value does not fit the requested type (a U64 above Int64.max).
    case valueOutOfRange(path: String, tensor: String, index: Int)
    /// A float value is NaN or infinite (or, for F64, beyond Float32's range), where finite
    /// values are required (weights, noise); `index` is the first such value, row-major.
    case nonFinite(path: String, tensor: String, index: Int)
    /// Writing: a tensor name the format cannot hold (`__metadata__`).
    case invalidTensorName(path: String, name: String)
    /// Writing failed (the destination is left as it was).
    case writeFailed(path: String, reason: String)

    /// The path of the file concerned.
    public var path: String {
        switch self {
        case .unreadable(let p, _), .fileTooSmall(let p, _), .headerTooLarge(let p, _),
             .headerBeyondFile(let p, _, _), .invalidUTF8(let p, _), .invalidJSON(let p, _, _),
             .headerNotObject(let p), .duplicateKey(let p, _), .invalidMetadata(let p, _),
             .invalidEntry(let p, _, _), .invalidInteger(let p, _, _, _), .unknownDType(let p, _, _),
             .invalidOffsets(let p, _, _, _, _, _), .sizeOverflow(let p, _, _, _),
             .misalignedSize(let p, _, _, _), .sizeMismatch(let p, _, _, _, _, _),
             .fileSizeMismatch(let p, _, _), .tensorNotFound(let p, _), .unsupportedDType(let p, _, _, _),
             .valueOutOfRange(let p, _, _), .nonFinite(let p, _, _), .invalidTensorName(let p, _), .writeFailed(let p, _):
            return p
        }
    }
}

extension SafetensorsError: CustomStringConvertible, LocalizedError {
    public var description: String {
        "\(path): \(problem)"
    }

    public var errorDescription: String? { description }

    private var problem: String {
        func shapeText(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
        switch self {
        case .unreadable(_, let reason):
            return "cannot read file: \(reason)"
        case .fileTooSmall(_, let size):
            return "file has \(size) bytes, fewer than the 8-byte header length"
        case .headerTooLarge(_, let n):
            return "header length \(n) is over the limit of \(Safetensors.maximumHeaderLength) bytes"
        case .headerBeyondFile(_, let n, let size):
            return "header of \(n) bytes ends at byte \(8 + n), past the end of the \(size)-byte file"
        case .invalidUTF8(_, let offset):
            return "header is not valid UTF-8 (at header byte \(offset))"
        case .invalidJSON(_, let offset, let reason):
            return "header is not valid JSON at header byte \(offset): \(reason)"
        case .headerNotObject:
            return "header is not a JSON object"
        case .duplicateKey(_, let key):
            return "key '\(key)' appears more than once in the header"
        case .invalidMetadata(_, let reason):
            return "__metadata__ \(reason)"
        case .invalidEntry(_, let tensor, let reason):
            return "tensor '\(tensor)': \(reason)"
        case .invalidInteger(_, let tensor, let field, let text):
            return "tensor '\(tensor)': \(field) holds \(text), not a non-negative integer that fits in 64 bits"
        case .unknownDType(_, let tensor, let dtype):
            return "tensor '\(tensor)' has unknown dtype '\(dtype)'"
        case .invalidOffsets(_, let tensor, let begin, let end, let expected, let problem):
            let what: String
            switch problem {
            case .beginAfterEnd: what = "begin is after end"
            case .doesNotStartAtZero: what = "the first tensor in the data must begin at 0"
            case .gap: what = "gap after the previous tensor, which ends at \(expected)"
            case .overlap: what = "overlaps the previous tensor, which ends at \(expected)"
            }
            return "tensor '\(tensor)' has invalid data_offsets [\(begin),\(end)]: \(what)"
        case .sizeOverflow(_, let tensor, let dtype, let shape):
            return "tensor '\(tensor)': byte size of shape \(shapeText(shape)) of \(dtype.rawValue) overflows"
        case .misalignedSize(_, let tensor, let dtype, let shape):
            return "tensor '\(tensor)': shape \(shapeText(shape)) of \(dtype.rawValue) does not fill whole bytes"
        case .sizeMismatch(_, let tensor, let dtype, let shape, let bytes, let expected):
            return "tensor '\(tensor)' has \(bytes) bytes but shape \(shapeText(shape)) of \(dtype.rawValue) needs \(expected)"
        case .fileSizeMismatch(_, let size, let expected):
            let why = size > expected ? "trailing bytes after the last tensor" : "data is truncated"
            return "file has \(size) bytes but its header describes \(expected) (\(why))"
        case .tensorNotFound(_, let name):
            return "no tensor named '\(name)'"
        case .unsupportedDType(_, let tensor, let dtype, let requested):
            return "tensor '\(tensor)' of dtype \(dtype.rawValue) cannot be read as \(requested)"
        case .valueOutOfRange(_, let tensor, let index):
            return "tensor '\(tensor)': element \(index) does not fit in Int64"
        case .nonFinite(_, let tensor, let index):
            return "tensor '\(tensor)': element \(index) is NaN or infinite; expected finite values"
        case .invalidTensorName(_, let name):
            return "'\(name)' cannot be used as a tensor name"
        case .writeFailed(_, let reason):
            return "cannot write file: \(reason)"
        }
    }
}
